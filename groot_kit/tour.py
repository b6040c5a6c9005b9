"""`python -m groot_kit.tour`: run every notebook headless in fast mode, one line per notebook."""
from groot_kit.notebooks import main

if __name__ == "__main__":
    raise SystemExit(main([]))
