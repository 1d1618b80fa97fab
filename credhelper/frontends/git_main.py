"""``python -I -S .../git_main.py get``: the ``entra`` helper without site, .pth files or a shim.

``credhelper configure git`` writes a one-line shell wrapper that runs this file for ``get`` and
``erase`` only. ``-I -S`` skip the site module and every ``.pth`` file of the virtualenv (a few
milliseconds on each git call); the standard library and this package are all it needs.
"""

import sys

if __name__ == "__main__":
    # -I keeps this file's directory off sys.path; the package root is three levels up. Last
    # on the path, so nothing installed beside us can stand in for a standard module.
    sys.path.append(__file__.rsplit("/", 3)[0])
    from credhelper.frontends.git import main

    main()
