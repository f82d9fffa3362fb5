from tests.e2e.stack import stack, stack_factory

__all__ = ["stack", "stack_factory"]
