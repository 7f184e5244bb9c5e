"""The reproduction of the paper, above the core: what each notebook computes, the paper's
reported numbers (reported.py), tables and figures on disk, the verdicts on the paper's claims,
the converged CPU study and the papermill runner. Nothing in the core imports this package."""
