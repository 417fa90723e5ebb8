"""``pytest --threadtrace``: off by default, fails deadlocking and inverting tests."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

INVERSION = """
    import threading

    accounts = threading.Lock()
    ledger = threading.Lock()

    def test_transfer():
        with accounts:
            with ledger:
                pass

    def test_audit():
        with ledger:
            with accounts:
                pass

    def test_unrelated():
        with accounts:
            pass
"""

DEADLOCK = """
    import threading

    def test_deadlock():
        a, b = threading.Lock(), threading.Lock()
        both = threading.Barrier(2)
        def one():
            with a:
                both.wait(10)
                with b:
                    pass
        def two():
            with b:
                both.wait(10)
                with a:
                    pass
        workers = [threading.Thread(target=f, name=f.__name__) for f in (one, two)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
            assert not w.is_alive()
"""

CONTENDED = """
    import threading

    def test_contended():
        hot = threading.Lock()
        hot.acquire()
        waiting = threading.Event()
        def take():
            waiting.set()
            with hot:
                pass
        worker = threading.Thread(target=take)
        worker.start()
        waiting.wait(10)
        from threadtrace.testing import wait_for_waiters
        wait_for_waiters(hot, 1)
        hot.release()
        worker.join(10)
"""


def test_the_plugin_is_off_by_default(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=textwrap.dedent(INVERSION))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert "POSSIBLE DEADLOCK" not in result.stdout.str()
    assert "contention report" not in result.stdout.str()


def test_an_inversion_fails_the_test_that_closes_the_cycle(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=textwrap.dedent(INVERSION))
    result = pytester.runpytest_subprocess("--threadtrace", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "FAILED test_app.py::test_audit" in out
    result.stdout.fnmatch_lines(
        [
            "*threadtrace: POSSIBLE DEADLOCK: locks were taken in conflicting orders*",
            "*cycle: test_app.py:3 -> test_app.py:4 -> test_app.py:3",
            "*MainThread took test_app.py:4 at test_app.py:8 in test_transfer",
            "*while holding test_app.py:3, taken at test_app.py:7 in test_transfer",
            "*MainThread took test_app.py:3 at test_app.py:13 in test_audit",
            "*while holding test_app.py:4, taken at test_app.py:12 in test_audit",
        ]
    )


def test_a_deadlock_fails_the_test_instead_of_hanging_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=textwrap.dedent(DEADLOCK))
    result = pytester.runpytest_subprocess(
        "--threadtrace",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestUnhandledThreadExceptionWarning",
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed*"]
    )


def test_the_session_ends_with_a_contention_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_app=textwrap.dedent(CONTENDED))
    result = pytester.runpytest_subprocess("--threadtrace", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*= threadtrace contention report =*", "*test_app.py:4*"])


def test_an_inversion_in_a_fixture_fails_the_test_that_uses_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_app=textwrap.dedent(
            """
            import threading
            import pytest

            a = threading.Lock()
            b = threading.Lock()

            @pytest.fixture
            def inverted():
                with b:
                    with a:
                        pass

            def test_order():
                with a:
                    with b:
                        pass

            def test_uses_fixture(inverted):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("--threadtrace", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at setup of test_uses_fixture*", "*POSSIBLE DEADLOCK*"])
