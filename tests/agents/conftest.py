from tests.fakegithub.fixtures import fakegithub  # noqa: F401
