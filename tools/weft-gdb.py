# gdb helpers for weft.  Load with:  (gdb) source tools/weft-gdb.py
#
#   weft-bt TASK   backtrace of a suspended task (TASK: a weft_task * value,
#                  e.g. a handle variable or an address)
#   weft-tasks [RUNTIME]  every live task of each loop (of every started
#                  runtime without an argument): state, loop, pinned, what
#                  it waits on and since when, its group -- the fields of
#                  weft_dump's JSON.  Reads memory only, so it works on a
#                  core file:  gdb -batch -ex 'source tools/weft-gdb.py'
#                  -ex weft-tasks PROGRAM CORE
#
# A suspended task's context holds its saved registers; its resume address
# is a label inside weft__ctx_switch where the stack looks exactly as at the
# switch's entry, so the CFI there unwinds through the task's own frames
# down to weft__ctx_trampoline.  weft-bt loads those registers into the
# selected thread, prints the backtrace, and puts the real ones back.
# Needs a binary built with -g (the release build is).
import gdb

REGS = ["rip", "rsp", "rbx", "rbp", "r12", "r13", "r14", "r15"]
STATES = {1: "running", 2: "notified", 4: "done"}


def task_state(t):
    s = int(t["state"]["__val"] if t["state"].type.code == gdb.TYPE_CODE_STRUCT
            else t["state"])
    names = [n for bit, n in STATES.items() if s & bit]
    return "|".join(names) if names else "parked"


class WeftBt(gdb.Command):
    """weft-bt TASK: backtrace of a suspended weft task."""

    def __init__(self):
        super().__init__("weft-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        t = gdb.parse_and_eval(arg).cast(gdb.lookup_type("struct weft_task").pointer())
        ctx = t["fib"]["ctx"]
        if int(t["state"]) & 1:
            print("task %d is running: use thread apply all bt" % int(t["id"]))
            return
        saved = {r: int(gdb.parse_and_eval("$" + r)) for r in REGS}
        try:
            for r in REGS:
                gdb.execute("set $%s = %d" % (r, int(ctx[r])), to_string=True)
            name = t["name"].string() or "task-%d" % int(t["id"])
            print("task %d \"%s\" (%s):" % (int(t["id"]), name, task_state(t)))
            gdb.execute("bt")
        finally:
            for r in REGS:
                gdb.execute("set $%s = %d" % (r, saved[r]), to_string=True)


def enum_names(type_name, prefix):
    """{value: short name} of an enum: WEFT_WAIT_QUEUE_GET -> queue_get."""
    try:
        t = gdb.lookup_type(type_name)
    except gdb.error:
        return {}
    return {f.enumval: f.name[len(prefix):].lower() for f in t.fields()
            if f.name.startswith(prefix)}


def runtimes(arg):
    """The runtime named by arg, else every started one (weft__runtimes:
    read from memory, so this works on a core file too)."""
    rtp = gdb.lookup_type("struct weft_runtime").pointer()
    if arg:
        return [gdb.parse_and_eval(arg).cast(rtp)]
    out = []
    rt = gdb.parse_and_eval("weft__runtimes")
    while int(rt) != 0:
        out.append(rt)
        rt = rt["next_rt"]
    return out


def task_fields(t, kinds, ops):
    """The fields weft_dump writes for task t, as `key=value` words."""
    s = int(t["state"])
    if s & 4:
        return None  # done: not live
    state = "running" if s & 1 else "ready" if s & 2 else "parked"
    name = t["name"].string() or "task-%d" % int(t["id"])
    loop = int(t["loop"]["index"]) if int(t["loop"]) else -1
    pin = int(t["pin"])
    quoted = '"%s"' % name.replace('\\', '\\\\').replace('"', '\\"')
    words = ["task %d" % int(t["id"]), quoted, state, "loop=%d" % loop,
             "registry=%d" % int(t["owner"]["index"]),
             "pinned=%d" % pin if pin >= 0 else "stealable"]
    if int(t["group_id"]):
        words.append("group=%d" % int(t["group_id"]))
    if state != "parked":
        return words
    kind = kinds.get(int(t["wait_kind"]), str(int(t["wait_kind"])))
    kind = "unrecorded" if kind == "none" else kind
    words.append("wait=%s" % kind)
    obj = int(t["wait_obj"])
    if kind == "io":
        op = ops.get(int(t["wait_op"]), str(int(t["wait_op"])))
        words.append("op=%s fd=%d" % ("recv_multishot" if op == "recv_multi" else op,
                                      int(t["wait_fd"])))
    elif kind == "sleep" and int(t["wait_until"]):
        words.append("until_ns=%d" % int(t["wait_until"]))
    if kind == "join" and obj:
        words.append("task=%d" % int(t["wait_obj"].cast(t.type)["id"]))
    elif kind == "group" and obj:
        g = t["wait_obj"].cast(gdb.lookup_type("struct weft_group").pointer())
        words.append("group_waited=%d" % int(g["id"]))
    elif obj:
        words.append("object=%#x" % obj)
    if int(t["wait_since"]):
        words.append("since_ns=%d" % int(t["wait_since"]))
    return words


class WeftTasks(gdb.Command):
    """weft-tasks [RUNTIME]: every live task of each loop, with what it waits
    on (the fields of weft_dump's JSON, docs/observability.md); all started
    runtimes without an argument.  Reads memory only: works on a core file."""

    def __init__(self):
        super().__init__("weft-tasks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        kinds = enum_names("enum weft__wait_kind", "WEFT_WAIT_")
        ops = enum_names("enum weft__opcode", "WEFT_OP_")
        for rt in runtimes(arg):
            print("runtime %#x: %d loops" % (int(rt), int(rt["nloops"])))
            groups = {}  # group id -> (owner task id, [children])
            for i in range(int(rt["nloops"])):
                l = rt["loops"][i]
                print("loop %d: inflight=%d" % (i, int(l["inflight"])))
                t = l["reg_head"]
                while int(t) != 0:
                    words = task_fields(t, kinds, ops)
                    if words:
                        print("  " + " ".join(words))
                        gid = int(t["group_id"])
                        if gid:
                            g = groups.setdefault(gid, [int(t["group_owner"]), []])
                            g[1].append(int(t["id"]))
                    t = t["reg_next"]
            for gid, (owner, kids) in sorted(groups.items()):
                print("group %d: owner task %d, children %s" %
                      (gid, owner, " ".join(str(k) for k in sorted(kids))))


WeftBt()
WeftTasks()
