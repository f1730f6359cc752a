"""Data stage: videos -> face crops -> catalog -> datasets.

Submodules are imported explicitly (``from deepshield.data.preprocess import run_preprocess``) so that
importing the package stays cheap; the face detector pulls in torch only when it is built.
"""
