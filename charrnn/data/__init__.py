"""Text in, ids out: preparing a corpus (`prep`), the datasets on disk and their cache (`dataset`), and
the suffix-array index of a corpus that `--novelty` searches (`corpus_index`).

Nothing here imports torch or knows about models: training and inference both read from it.
"""
