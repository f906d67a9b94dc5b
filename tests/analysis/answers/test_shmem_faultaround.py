"""The shmem-faultaround answer: pages reported per page read, per fault-around setting."""

from ._rows import data, row, say


def test_shmem_faultaround_counts_pages_reported_per_page_read():
    rows = [row("shmem-zap", tp=100, fp=1500, backing="shmem", run="default", interval=i) for i in range(3)]
    rows += [row("shmem-zap", tp=100, fp=0, backing="shmem", run="fa4k", interval=i) for i in range(3)]
    rows += [row("shmem-zap-minor", tp=100, fp=0, backing="shmem", run="default", interval=i) for i in range(3)]
    settings = {"fa4k": {"fault-around": {"set": "4K", "was": "65536"}}}
    text = say("shmem-faultaround", data(rows, settings))
    assert "16.00 pages per page read on hotcold (precision 0.062) [fault-around kernel default]" in text
    assert "1.00 pages per page read on hotcold (precision 1.000) [fault-around 4K]" in text
    assert "shmem-zap-minor (zap + uffd MINOR faults) reported 1.00 pages per page read" in text
