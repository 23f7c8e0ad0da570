"""Settings every test process (and the archbench subprocesses they start) shares."""
import os

# The suite's 2 busy cores are never quiet: a measurement pass would wait out measure.quiet.timeout_s
# (2 minutes) for nothing. Figures are still judged and marked under load; tests of the wait itself set
# their own QuietSettings.
os.environ.setdefault("ARCHBENCH_QUIET_MAX_WAIT_S", "0")

# Two test workers share 2 cores: a second intra-op thread in each process (and in the archbench runs
# they start) only oversubscribes them, and spinning OpenMP threads then wait for a core (an interrupted-
# run test took 10x its idle time). Tests that need more threads set them explicitly.
os.environ.setdefault("OMP_NUM_THREADS", "1")
