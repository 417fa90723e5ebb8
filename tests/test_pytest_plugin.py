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
            "*cycle: accounts (test_app.py:3) -> ledger (test_app.py:4) -> accounts (test_app.py:3)",
            "*MainThread took ledger (test_app.py:4) at test_app.py:8 in test_transfer",
            "*while holding accounts (test_app.py:3), taken at test_app.py:7 in test_transfer",
            "*MainThread took accounts (test_app.py:3) at test_app.py:13 in test_audit",
            "*while holding ledger (test_app.py:4), taken at test_app.py:12 in test_audit",
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
    result.stdout.fnmatch_lines(["*= threadtrace contention report =*", "*hot (test_app.py:4)*"])


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


NO_IMPORT_CONFTEST = """
    import sys

    def pytest_sessionfinish(session):
        plugin = session.config.pluginmanager.get_plugin("threadtrace")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "threadtrace")
        print(f"\\nplugin loaded: {plugin is sys.modules.get('threadtrace_pytest')}")
        print(f"threadtrace modules: {loaded}")
        assert "threadtrace" not in sys.modules
"""


def test_a_run_that_does_not_use_the_plugin_imports_nothing_of_threadtrace(
    pytester: pytest.Pytester,
) -> None:
    """Installed and loaded, the plugin imports threadtrace only once it is turned on."""
    pytester.makeconftest(textwrap.dedent(NO_IMPORT_CONFTEST))
    pytester.makepyfile(test_app=textwrap.dedent(INVERSION))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["plugin loaded: True", "threadtrace modules: []"])
    assert result.ret == 0


def test_the_ini_setting_turns_the_plugin_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nthreadtrace = true\nthreadtrace_top = 1\n")
    pytester.makepyfile(test_app=textwrap.dedent(INVERSION))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*threadtrace: POSSIBLE DEADLOCK*",
            "*= threadtrace contention report =*",
            "FAILED test_app.py::test_audit*",
        ]
    )


def test_the_option_wins_over_the_ini_setting(pytester: pytest.Pytester) -> None:
    """`-o threadtrace=false` turns off what the ini file turned on; `--threadtrace-top 0` the report."""
    pytester.makeini("[pytest]\nthreadtrace = true\n")
    pytester.makepyfile(
        test_off="import sys\n\ndef test_off():\n    assert 'threadtrace' not in sys.modules\n"
    )
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "threadtrace=false")
    off.assert_outcomes(passed=1)
    pytester.makepyfile(test_off="def test_off():\n    pass\n")
    pytester.makepyfile(test_app=textwrap.dedent(CONTENDED))
    quiet = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--threadtrace-top", "0")
    quiet.assert_outcomes(passed=2)
    assert "contention report" not in quiet.stdout.str()


def test_a_bad_report_size_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nthreadtrace_top = many\n")
    pytester.makepyfile(test_app="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*threadtrace_top must be a whole number >= 0, got 'many'"])


MARKED = """
    import threading

    import pytest
    import threadtrace

    def take_in_both_orders():
        accounts, ledger = threading.Lock(), threading.Lock()
        with accounts:
            with ledger:
                pass
        with ledger:
            with accounts:
                pass

    @pytest.mark.threadtrace
    def test_marked():
        take_in_both_orders()

    def test_unmarked():
        assert not threadtrace.is_patched()
        take_in_both_orders()

    @pytest.fixture
    def patched_in_setup():
        return threadtrace.is_patched()

    @pytest.mark.threadtrace
    def test_patched_from_before_the_fixtures(patched_in_setup):
        assert patched_in_setup
"""


def test_the_marker_traces_only_the_marked_tests(pytester: pytest.Pytester) -> None:
    """Patched around a marked test, fixtures included; an unmarked test is left alone."""
    pytester.makepyfile(test_app=textwrap.dedent(MARKED))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        ["*_ test_marked _*", "threadtrace: POSSIBLE DEADLOCK*", "FAILED test_app.py::test_marked*"]
    )


def test_a_marked_test_that_deadlocks_fails_instead_of_hanging(pytester: pytest.Pytester) -> None:
    marked = textwrap.dedent(DEADLOCK).replace(
        "def test_deadlock", "import pytest\n\n@pytest.mark.threadtrace\ndef test_deadlock"
    )
    pytester.makepyfile(test_app=marked)
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore::pytest.PytestUnhandledThreadExceptionWarning",
        timeout=60,  # untraced, the two threads would keep the run from ever ending
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*threadtrace: DEADLOCK: 2 threads wait for each other and will never proceed*"]
    )


def test_the_old_plugin_module_still_loads_with_p(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-p threadtrace.pytest_plugin` works with the entry point loaded, and without autoloading."""
    pytester.makepyfile(test_app=textwrap.dedent(INVERSION))
    both = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "threadtrace.pytest_plugin", "--threadtrace"
    )
    both.assert_outcomes(passed=2, failed=1)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    alone = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-p", "threadtrace.pytest_plugin", "--threadtrace"
    )
    alone.assert_outcomes(passed=2, failed=1)
