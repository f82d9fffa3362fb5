from tests.support.supervision import session, sim

__all__ = ["session", "sim"]
