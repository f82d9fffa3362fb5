from tests.support.stack import stack, stack_factory

__all__ = ["stack", "stack_factory"]
