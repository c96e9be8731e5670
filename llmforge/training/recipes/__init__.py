"""Training recipes: one file per method, each reading top to bottom as setup -> train -> cleanup (torchtune, nanoGPT).

``pretrain.py`` is next-token pretraining of ``LlamaModel`` on a packed token file.
"""
