"""``evalrun test``: a project's pytest suite with live progress, a global timeout and CI results.

Kept free of imports here: pytest loads ``evalrun.testrun.plugin`` into the child process, and
that must cost nothing but the plugin itself.
"""
