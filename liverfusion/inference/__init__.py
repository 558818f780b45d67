"""Stages 3-5 at run time: the pipeline (`pipeline`: align, predict, post-process, write), the device a run uses
(`device`), the network on a whole volume (`sliding_window`), post-processing into liver, lesions and ratings
(`postprocess`), and cohorts (`cohort`: `liverfusion batch`)."""
