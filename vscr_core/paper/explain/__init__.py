"""Sect. 5.5's visualisations, baseline against VSCR, one module per figure: gradcam.py draws
Fig. 9 (Grad-CAM maps), tsne.py Fig. 10 (a t-SNE of test features) and retrieval.py Figs. 11 and
12 (top-10 retrieval rows); shared.py holds what they share (the variants compared, the trained
models, the test split, the junk rule, images for display).

Each figure's module has a function that computes, a table builder that turns the result into
the notebook's CSV, a plot, and a statement that says in words what the table measured; notebooks
06-08 call these and nothing else. Nothing is re-exported here: import the figure's module.
"""
