# gdb helpers for weft.  Load with:  (gdb) source tools/weft-gdb.py
#
#   weft-bt TASK   backtrace of a suspended task (TASK: a weft_task * value,
#                  e.g. a handle variable or an address)
#   weft-tasks     every task registered on each loop, with its state
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


class WeftTasks(gdb.Command):
    """weft-tasks: tasks registered on each loop of the current runtime."""

    def __init__(self):
        super().__init__("weft-tasks", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        rt = gdb.parse_and_eval(arg) if arg else None
        if rt is None:
            print("usage: weft-tasks RUNTIME  (a weft_runtime * value)")
            return
        rt = rt.cast(gdb.lookup_type("struct weft_runtime").pointer())
        for i in range(int(rt["nloops"])):
            l = rt["loops"][i]
            print("loop %d:" % i)
            t = l["reg_head"]
            while int(t) != 0:
                print("  %#x id=%d name=%s state=%s" % (int(t), int(t["id"]),
                      t["name"].string() or "-", task_state(t)))
                t = t["reg_next"]


WeftBt()
WeftTasks()
