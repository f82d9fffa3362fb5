from tests.support.stack import receiver, stack, stack_factory

__all__ = ["receiver", "stack", "stack_factory"]
