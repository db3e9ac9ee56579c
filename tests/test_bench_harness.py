"""The harness's arithmetic: a repeated benchmark keeps the median run, not the best one."""

from bench.harness import median_run


def test_a_repeated_contender_keeps_its_median_run_and_lists_every_time():
    runs = [{"seconds": 3.0, "peak_mb": 30}, {"seconds": 1.0, "peak_mb": 10}, {"seconds": 2.0, "peak_mb": 20}]
    kept = median_run(runs)
    assert kept["seconds"] == 2.0 and kept["peak_mb"] == 20  # the median's own figures, not mixed
    assert kept["all_seconds"] == [3.0, 1.0, 2.0]


def test_of_two_runs_the_slower_is_not_kept():
    assert median_run([{"seconds": 5.0}, {"seconds": 4.0}])["seconds"] == 4.0
