"""The command line parser every entry point uses (`fts-edge`, the train/ scripts)."""
import argparse


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and the way to see more) instead of the usage block."""

    def error(self, message):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
