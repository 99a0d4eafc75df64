def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reliability: the reliability harness (replicas behind nginx, private stores); "
                   "deselect with -m 'not reliability'")
