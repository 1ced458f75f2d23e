from tests.servers import resolver, serve, test_ca  # noqa: F401 (fixtures)
