"""One tool call on many hosts: a bounded fan-out engine, grouping of identical answers, rolling batches with
health gates, and the plan one approval covers."""
