"""Beyond one machine: sharded extraction into a Delta Lake, attaching its runs, and the statistics on Spark."""
