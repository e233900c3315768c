"""Process helpers the process tests share (psutil)."""
import psutil


def alive(processes) -> list:
    """The processes still running; zombies (ended, not yet reaped) and vanished ones count as gone."""
    running = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                running.append(p)
        except psutil.NoSuchProcess:
            pass
    return running
