"""Serial share of ae's training epochs (scripts/serial-share.sh runs it).

Reads `perf script -F tid,time,ip,sym` output with call chains. A sample on the main thread
(the lowest tid) is work no other thread can share: the main thread sleeps while rayon's
workers run a parallel region. Samples while the data loads and while the model is
evaluated are left out (neither is in an epoch's time). Prints the share, the Amdahl bounds
it implies, and the main thread's largest items (leaf function <- nearest ae function).

usage: python3 serial_share.py SAMPLES.txt [TOP]"""
import collections, re, sys
samples = []
cur = None
for line in open(sys.argv[1]):
    if not line.strip():
        if cur: samples.append(cur)
        cur = None
        continue
    if not line.startswith('\t'):
        p = line.split()
        cur = [int(p[0]), float(p[1].rstrip(':')), []]
    else:
        p = line.strip().split(None, 1)
        cur[2].append(p[1] if len(p) > 1 else '?')
if cur: samples.append(cur)
main = min(s[0] for s in samples)
def phase(st):
    for f in st:
        if 'evaluate' in f: return 'eval'
    for f in st:
        if 'train_on' in f: return 'train'
    return 'other'
# Training: between the end of loading (the main thread's last sample outside training and
# evaluation before its first evaluation) and each evaluation, and between evaluations.
# An evaluation is a run of the main thread's evaluating samples with gaps under 0.2 s (an
# epoch takes longer); what follows the last one (the test set, saving) is left out.
ms = sorted((t, phase(st)) for tid, t, st in samples if tid == main)
ev = [t for t, ph in ms if ph == 'eval']
runs = []
for t in ev:
    if runs and t - runs[-1][1] < 0.2:
        runs[-1][1] = t
    else:
        runs.append([t, t])
first_eval = runs[0][0] if runs else ms[-1][0]
load_end = max([t for t, ph in ms if ph == 'other' and t < first_eval] or [ms[0][0]])
bounds = [load_end] + [x for r in runs for x in r]
windows = [(bounds[i], bounds[i + 1]) for i in range(0, len(bounds) - 1, 2)]
def inside(t):
    return any(a < t < b for a, b in windows)
train = [s for s in samples if inside(s[1])]
serial = [s for s in train if s[0] == main]
n, k = len(train), len(serial)
print(f"training samples {n}, on the main thread {k}: serial share {100*k/max(n,1):.1f}%")
for th in (2, 16):
    s = k / max(n, 1)
    print(f"  Amdahl bound at {th} threads: {1/(s + (1-s)/th):.1f}x")
c = collections.Counter()
for tid, t, st in serial:
    leaf = re.sub(r'\(.*', '', st[0] if st else '?')
    caller = next((re.sub(r'::\{\{closure\}\}|<.*?>', '', f) for f in st[1:] if f.startswith(('ae_', '<ae_'))), '')
    c[(leaf[:50], caller[:60])] += 1
for (leaf, caller), v in c.most_common(int(sys.argv[2]) if len(sys.argv) > 2 else 15):
    print(f"  {100*v/max(n,1):5.2f}%  {leaf}  <- {caller}")
