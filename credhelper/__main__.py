"""``python -m credhelper``: what autostart and the systemd unit run when no console script is at hand."""

from credhelper.cli import main

if __name__ == "__main__":
    main()
