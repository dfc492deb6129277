"""What the tests share, by concern: servers, processes, the in-process
harness, projects."""
