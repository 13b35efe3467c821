"""Drift family: univariate (``univariate``, with its numeric fast path in ``numeric``, over
the sorted-sample statistics of ``sorted_samples``) and multivariate drift
(``multivariate``, over the PCA/MMD mathematics of ``kernels``).

Import rule: as for every metrics module, :mod:`evalstore.errors`, core and metrics only.
"""
