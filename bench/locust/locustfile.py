# The locustfile a Locust master needs when its workers are weft-load
# processes (docs/load.md, "Locust").
#
# A master never runs users itself, but Locust 2.12.1 refuses to start
# without at least one User class, and the class names are what it hands
# out: "spawn" messages carry {"WeftUser": n}, and weft-load opens one
# connection per user it is given, whatever the class is called.  The
# request itself is weft-load's own (its URL and options).
#
#   locust -f bench/locust/locustfile.py --master --headless \
#          --expect-workers 2 -u 64 -r 64 -t 30s --csv out
import gevent
from locust import User, constant, events, task


class WeftUser(User):
    wait_time = constant(1)

    @task
    def request(self):
        # Runs only if this file is given to a Python worker by mistake.
        raise RuntimeError("WeftUser is run by weft-load workers (--locust-master), not by Python")


@events.quitting.add_listener
def let_the_csv_catch_up(environment, **kwargs):
    # Locust 2.12.1's master rewrites its --csv files once a second and exits
    # about a second after telling the workers to quit, so the workers' last
    # reports (sent as they quit) can miss the files.  One more second here
    # gives the CSV writer a turn after them.
    options = environment.parsed_options
    if options is not None and options.master and options.csv_prefix:
        gevent.sleep(1.1)
