"""The tiny model the unit tests share: fast on a CPU, yet with every part of the real one.

1600 Hz audio, hop 16, EDA 4 Hz → 25 MFCC frames per EDA step; 2 s context; 16 levels.
"""

TINY_MODEL = dict(
    context_size_in_seconds=2,
    audio_sample_rate=1600,
    eda_sample_rate=4,
    mfcc_window_size=32,
    mfcc_hop_size=16,
    num_mfccs=5,
    hidden_channels=8,
    condition_channels=4,
    quantization_levels=16,
    max_stack_receptive_field=64,
)
