#!/usr/bin/env python3
# Benchmark only (BENCHMARKS.md, item 19): how long a commit's flush takes on
# this machine's disk while another file is being dirtied. Measures the
# fdatasync of an 8 KB write (as PostgreSQL's WAL flush at commit) for SECS
# seconds while a thread dirties a second file at RATE MB/s in 8 KB pages (as
# a growing table does), and with FLUSH_KB > 0 asks the kernel to write that
# file back after every FLUSH_KB (sync_file_range, as PostgreSQL's
# backend_flush_after does). Files under DIR (default /var/tmp/disktest).
#   infra/local/disk-flush-latency.py SECS RATE FLUSH_KB [DIR]
#   e.g. `… 65 10 0` (the kernel's own writeback) against `… 30 10 256`
import os, sys, time, threading, ctypes
secs = float(sys.argv[1]); rate = float(sys.argv[2]); flush_kb = int(sys.argv[3])
libc = ctypes.CDLL("libc.so.6", use_errno=True)
SFR_WRITE = 2
d = sys.argv[4] if len(sys.argv) > 4 else "/var/tmp/disktest"
os.makedirs(d, exist_ok=True)
wal = os.open(f"{d}/wal", os.O_RDWR | os.O_CREAT)
os.ftruncate(wal, 16 << 20); os.fsync(wal)
data = os.open(f"{d}/data", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
stop = False
def writer():
    page = b"\0" * 8192
    off = 0; since = 0; t0 = time.time(); n = 0
    while not stop:
        target = (time.time() - t0) * rate * 1e6
        while off < target and not stop:
            os.pwrite(data, page, off); off += 8192; since += 8192
            if flush_kb and since >= flush_kb * 1024:
                libc.sync_file_range(data, ctypes.c_longlong(off - since), ctypes.c_longlong(since), SFR_WRITE)
                since = 0
        time.sleep(0.001)
if rate > 0:
    th = threading.Thread(target=writer); th.start()
lat = []; off = 0; rec = b"x" * 8192
t_end = time.time() + secs
while time.time() < t_end:
    t = time.perf_counter()
    os.pwrite(wal, rec, off); os.fdatasync(wal)
    lat.append((time.perf_counter() - t) * 1000)
    off = (off + 8192) % (16 << 20)
    time.sleep(0.0005)
stop = True
lat.sort(); n = len(lat)
p = lambda q: lat[min(n - 1, int(q * n))]
print(f"rate {rate} MB/s flush {flush_kb} kB: {n} flushes, p50 {p(.5):.2f} p99 {p(.99):.2f} p99.9 {p(.999):.2f} max {lat[-1]:.1f} ms; over 10 ms: {sum(1 for x in lat if x > 10)}, over 20: {sum(1 for x in lat if x > 20)}")
os.remove(f"{d}/data")
os.remove(f"{d}/wal")
