"""The tiny-checkpoint builder moved to :mod:`geolocate.policy_training.tiny` (``geolocate train
--make-tiny-model``); the tests import it from here under its old name."""

from geolocate.policy_training.tiny import *  # noqa: F403
from geolocate.policy_training.tiny import build, build_tokenizer  # noqa: F401
