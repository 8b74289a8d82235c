"""The paper's table: MOGAQNN beside FP32, uniform QAT and random search, per CNN and dataset.

``python benchmarks/paper_table.py --profile standard`` (three seeds a cell, converged FP32
budgets, 16 x 8 evaluations per search; plan.py has the budgets and the estimated hours):

    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2 --plan
    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2
    python benchmarks/paper_table.py --profile standard --cells lenet5:fashion-mnist --workers 2
    python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --aggregate

Per (cell, seed) it runs two units (``plan.ARMS``), each written as one JSON under
``benchmarks/results/paper_table_standard/<dataset>-<model>/s<seed>-<arm>.json`` as soon as
it exists (rerunning the command skips finished units; a unit of another budget, or of
package defaults that have changed since, is redone): ``mogaqnn`` (the NSGA-II search and
its final stage: k final-trained candidates of the front, both FP32 baselines, uniform
8/4/2-bit QAT from the FP32 base, every model tested once) and ``random`` (random sampling,
the same evaluations and final stage, from the mogaqnn run's base, supernet and final
trainings; no uniform QAT). One search serves both claims: at >= 4x and at >= 8x the
final-trained candidate with the best final val at least that small (result.json's
``claims``). Once per cell (first seed, before its searches): ``convergence`` (the FP32
recipe at twice the epochs: converged when val accuracy gains < 0.5 pp). Cells run
Fashion-MNIST first, each dataset's cheapest first. The units are aggregated
(benchmarks/_evidence.py) into ``benchmarks/results/paper_table_standard.{json,md,png}``:
per cell and threshold the paired difference to the stronger FP32 baseline with its 95%
t-interval and verdict, the hypervolume of the final-trained fronts MOGAQNN / random,
Kendall's tau of the search's val against the final val; the headline over cells is
written into README.md and docs/evidence.md between ``<!-- paper-table-headline:start -->``
and ``<!-- paper-table-headline:end -->``. ``--profile standard-smoke`` runs the same
machinery on a budget of minutes and writes under runs/ (a check, not a result). The test
split is read once per final model; nothing here is chosen by test accuracy.

- ``plan``: the cells, the arms, the budgets, the estimated hours, where units lie;
- ``units``: running a (cell, seed)'s units (every model trained by the search);
- ``aggregate``: the units' figures per cell and over cells (JSON in, no training);
- ``render``: the markdown, the fronts plot, the headline block;
- ``cli``: the command line.
"""
