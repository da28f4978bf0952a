"""homeiq-pipeline: a faithful, queryable SQL mirror of Home Assistant."""
