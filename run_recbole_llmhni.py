"""Train and evaluate a model with recbole-llmhni, RecBole-style.

    python run_recbole_llmhni.py --model=LLMHNI_LightGCN --dataset=amazon-books
    python run_recbole_llmhni.py --model=LightGCN --dataset=ml-100k --epochs=50

``--model`` takes the plugin's models and every RecBole general recommender, so baselines
run through the same script under the same protocol. Any other ``--key=value`` is a RecBole
or plugin config key (RecBole reads them from the command line itself).
"""
import sys

from recbole_llmhni.cli.run import main

if __name__ == "__main__":
    sys.exit(main())
