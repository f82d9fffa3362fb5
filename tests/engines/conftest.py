from tests.support.supervision import sim

__all__ = ["sim"]
