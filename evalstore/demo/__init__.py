"""Demo layer: the synthetic credit-default scenario (``scenario``, built from the data
generators and drift schedule of ``synthetic``) and ``evalstore demo`` (``run``).

Import rule: the demo sits at the top with ``store`` and ``cli`` and may import any layer
(core, metrics, flywheel, the facade); nothing below it imports the demo (checked by
``tests/test_layers.py``).
"""
