"""Data quality: Great Expectations suites run on each newly closed partition of the lake.

- :mod:`.partitions`: which partitions exist, which the stream has closed, which wait for a
  verdict;
- :mod:`.frames`: the DataFrames a partition is validated through (pure functions);
- :mod:`.profile`: per-source value ranges and distributions proposed from history;
- :mod:`.suites`: the expectation suites (checked in under ``expectations/gx``);
- :mod:`.validate`: a partition through its suites, into a :class:`~.verdicts.Verdict`;
- :mod:`.verdicts`: verdicts, the results history and the quarantine, kept in HDFS, and
  :func:`~.verdicts.trusted_partitions`, the one selection that training and reports use;
- :mod:`.alert`: the alert e-mail naming the failed expectations with sample rows.
"""
