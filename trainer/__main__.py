"""Entry point of the training image: `python -m trainer` (configuration from environment variables)."""
import sys

from trainer.main import main

sys.exit(main())
