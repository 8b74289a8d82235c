"""The paper's table: MOGAQNN beside FP32, uniform QAT and random search, per CNN and dataset.

The code is the package benchmarks/papertable/ (its docstring says what runs and where the
results go); this script is its command line:

    PYTHONPATH=. python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --plan
    PYTHONPATH=. python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --workers 2
    PYTHONPATH=. python benchmarks/paper_table.py --profile standard --seeds 0,1,2 --aggregate
"""

import sys

from papertable.cli import main  # benchmarks/papertable/, beside this file

if __name__ == "__main__":
    sys.exit(main())
