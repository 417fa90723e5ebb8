"""The traced primitives: the locks' hot path (C, or pure Python), and every drop-in class.

``Lock``/``RLock`` keep their hot path in a core base class (:mod:`.core`);
``Condition``, ``Semaphore``, ``Event`` and ``Barrier`` subclass threading's
own classes and add counting around the calls that block; threads are traced
through hooks (:mod:`.threads`).  Slow paths call down into the detectors'
hooks and the recorder; nothing below imports this package.
"""
