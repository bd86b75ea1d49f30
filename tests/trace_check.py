"""Checks a weft event trace (Chrome trace-event JSON) for tests/test_trace.c.

    python3 tests/trace_check.py FILE CHECK [ARG...]

Exit 0 when the check holds, 1 (with the reason on stderr) when not; the
file must parse as JSON in every case.  Checks:
  valid LOOPS        process and thread names for LOOPS loops; every event
                     well formed (ph, pid, tid, ts; dur >= 0 on slices)
  order NAME         the task NAME: spawned, ran, parked, was woken by its
                     timer, ran again and exited, in that order
  io NAME            the task NAME submitted and completed a write and a read
  flow NAME          a wake of NAME starts a flow ("s") on one loop that ends
                     ("f") on another, at the start of one of NAME's runs
"""
import json
import sys


def fail(msg):
    print("trace_check: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    path, check, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    evs = doc["traceEvents"]
    for e in evs:
        for k in ("ph", "pid", "tid"):
            if k not in e:
                fail("event without %s: %r" % (k, e))
        if e["ph"] != "M" and not isinstance(e.get("ts"), (int, float)):
            fail("event without ts: %r" % e)
        if e["ph"] == "X" and e["dur"] < 0:
            fail("negative slice: %r" % e)
    if check == "valid":
        loops = int(args[0])
        names = {e["tid"]: e["args"]["name"] for e in evs
                 if e["ph"] == "M" and e["name"] == "thread_name"}
        if names != {i: "loop %d" % i for i in range(loops)}:
            fail("thread names %r" % names)
        if not any(e["ph"] == "M" and e["name"] == "process_name" for e in evs):
            fail("no process name")
        return
    name = args[0]
    runs = sorted((e for e in evs if e["ph"] == "X" and e["cat"] == "run"
                   and e["name"] == name), key=lambda e: e["ts"])
    if not runs:
        fail("no run slice of %s" % name)
    ids = {r["args"]["task"] for r in runs}
    if len(ids) != 1:
        fail("%s has ids %r" % (name, ids))
    tid = ids.pop()
    mine = sorted((e for e in evs if e["ph"] == "i" and e["args"]["task"] == tid),
                  key=lambda e: e["ts"])
    if check == "order":
        # at one timestamp: a slice's end, then instants (in the file's
        # order, which is the recording order), then a slice's start
        seq = []
        for i, e in enumerate(mine):
            seq.append((round(e["ts"], 3), 0, i, e["name"].split(":")[0]))
        for r in runs:
            seq.append((round(r["ts"], 3), 1, 0, "run"))
            seq.append((round(r["ts"] + r["dur"], 3), -1, 0, "end:" + r["args"]["then"].split(":")[0]))
        seq.sort()
        # on several loops it may have been stolen before it ran: not
        # part of the order checked
        got = [s[3] for s in seq if s[3] != "steal"]
        want = ["spawn", "run", "end:park", "park", "timer", "wake", "run", "end:exit"]
        if got != want:
            fail("order of %s: %r, want %r" % (name, got, want))
    elif check == "io":
        kinds = [e["name"] for e in mine]
        for want in ("submit write", "complete write", "submit read", "complete read"):
            if want not in kinds:
                fail("%s: no %r in %r" % (name, want, kinds))
        if kinds.index("submit write") > kinds.index("complete write"):
            fail("write completed before it was submitted")
    elif check == "flow":
        starts = {e["id"]: e for e in evs if e["ph"] == "s"}
        ends = [e for e in evs if e["ph"] == "f"]
        starts_at = {r["ts"] for r in runs}
        for f in ends:
            s = starts.get(f["id"])
            if s and s["tid"] != f["tid"] and f["ts"] in starts_at and s["ts"] <= f["ts"]:
                return
        fail("no cross-loop flow into a run of %s (%d starts, %d ends)"
             % (name, len(starts), len(ends)))
    else:
        fail("unknown check " + check)


main()
