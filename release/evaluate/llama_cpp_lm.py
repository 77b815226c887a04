"""lm-eval's model for a GGUF file, run by llama.cpp in process (llama-cpp-python).

lm-eval's own ``gguf`` model talks to a llama.cpp server and reads a loglikelihood from
the server's top logprobs: a continuation outside them scores as if impossible, so
multiple-choice tasks score at chance (lm-evaluation-harness#4158). This one loads the
file with every position's logits kept (``logits_all``) and scores requests as lm-eval's
``hf`` model does: the same tokenization rules (``TemplateLM``: context and continuation
split on the whole text's tokens, BOS or EOS before an empty context), the same rolling
windows for perplexity, greedy generation cut at the task's ``until`` strings. So a
GGUF file's scores stand beside the merged model's, and differ by what the file loses.

It is registered with lm-eval's registry as ``harness.LLAMA_CPP_MODEL`` and run through
lm-eval's own command line: ``python -m release.evaluate.llama_cpp_lm run --model llama-cpp
--model_args pretrained=FILE.gguf …`` is ``lm_eval run`` with this model known
(``release.evaluate.harness`` builds that command).

The context is sized to the longest request of a call (up to the file's training context,
or ``max_length``): the logits kept for every position are that many rows of the
vocabulary.
"""

from __future__ import annotations

import os

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from release.evaluate.harness import LLAMA_CPP_MODEL

_CONTEXT_STEP = 256
"""The context grows in steps of this many tokens (each growth reloads the file)."""


class LlamaCppLM(TemplateLM):
    """A GGUF file scored by llama.cpp: ``pretrained`` is the file's path."""

    def __init__(
        self,
        pretrained: str,
        max_length: int | None = None,
        max_gen_toks: int = 256,
        n_threads: int | None = None,
        batch_size: int | str = 1,  # lm-eval passes it; llama.cpp runs a request at a time
        **_ignored,
    ) -> None:
        super().__init__()
        import llama_cpp

        self.path = str(pretrained)
        self.threads = int(n_threads) if n_threads else max(1, len(os.sched_getaffinity(0)))
        self.vocab_file = llama_cpp.Llama(self.path, vocab_only=True, n_ctx=1, verbose=False)
        metadata = self.vocab_file.metadata
        trained = int(metadata[f"{metadata['general.architecture']}.context_length"])
        self._max_length = int(max_length) if max_length else trained
        self.max_gen_toks = int(max_gen_toks)
        self._llm = None

    # tokens: llama.cpp's own, from the file, as lm-eval's hf model uses the tokenizer's

    @property
    def eot_token_id(self) -> int:
        return self.vocab_file.token_eos()

    @property
    def prefix_token_id(self) -> int:
        bos = self.vocab_file.token_bos()
        return bos if bos >= 0 else self.eot_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **_) -> list[int]:
        """The file's tokens of ``string``; special tokens in it are read as such (as a
        transformers tokenizer does); BOS as the file's vocabulary says, unless
        ``add_special_tokens`` says otherwise or ``string`` already starts with it."""
        bos = self.vocab_file.token_bos()
        starts_with_bos = bos >= 0 and string.startswith(self.tok_decode([bos], special=True))
        add = add_special_tokens is not False and not starts_with_bos
        return self.vocab_file.tokenize(string.encode(), add_bos=add, special=True)

    def tok_decode(self, tokens: list[int], special: bool = False) -> str:
        return self.vocab_file.detokenize(tokens, special=special).decode("utf-8", "replace")

    @property
    def tokenizer_name(self) -> str:
        return os.path.basename(self.path)

    def chat_template(self, chat_template: bool | str = False) -> str | None:
        return self.vocab_file.metadata.get("tokenizer.chat_template")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt=True):
        """The file's chat template, rendered as llama-cpp-python's chat front end does."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.chat_template()
        if not template:
            raise ValueError(f"{self.path} holds no chat template (tokenizer.chat_template)")
        formatter = Jinja2ChatFormatter(
            template,
            eos_token=self.tok_decode([self.eot_token_id], special=True),
            bos_token=self.tok_decode([self.prefix_token_id], special=True),
            add_generation_prompt=add_generation_prompt,
        )
        return formatter(messages=chat_history).prompt

    # the model: loaded with room for the longest sequence a call holds

    def _model(self, longest: int):
        """The file loaded with a context of at least ``longest`` tokens."""
        import llama_cpp

        needed = min(self.max_length, -(-max(longest, 1) // _CONTEXT_STEP) * _CONTEXT_STEP)
        if self._llm is None or self._llm.n_ctx() < needed:
            if self._llm is not None:
                self._llm.close()
            self._llm = llama_cpp.Llama(
                self.path, n_ctx=needed, logits_all=True, n_threads=self.threads, verbose=False
            )
        return self._llm

    def _logits(self, llm, tokens: list[int]) -> np.ndarray:
        """Logits after each of ``tokens``; the part of them llama.cpp ran last is kept in
        its cache and not run again (a multiple-choice question's shared context)."""
        kept = llm.n_tokens
        common = 0
        while common < min(kept, len(tokens)) and llm.input_ids[common] == tokens[common]:
            common += 1
        if common == len(tokens) and common > 0:
            common -= 1  # the last row is rewritten by running its token again
        llm.n_tokens = common
        llm.eval(tokens[common:])
        return llm.scores[: len(tokens)]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **_):
        """Each continuation's log-probability given its context, and whether greedy
        decoding gives it: its tokens after the context, the whole cut on the left to
        ``max_length`` + 1 tokens (as the hf model cuts it)."""
        inputs = []
        for _, context, continuation in requests:
            whole = (context + continuation)[-(self.max_length + 1) :]
            inputs.append((whole[:-1], continuation))
        llm = self._model(max((len(tokens) for tokens, _ in inputs), default=1))
        answers: list[tuple[float, bool] | None] = [None] * len(inputs)
        for index in sorted(range(len(inputs)), key=lambda i: inputs[i][0]):  # shared prefixes
            tokens, continuation = inputs[index]
            rows = self._logits(llm, tokens)[len(tokens) - len(continuation) :]
            wide = rows.astype(np.float64)
            top = wide.max(-1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(wide - top).sum(-1))
            picked = wide[np.arange(len(continuation)), continuation] - log_norm
            greedy = bool((wide.argmax(-1) == np.asarray(continuation)).all())
            answers[index] = (float(picked.sum()), greedy)
            self.cache_hook.add_partial("loglikelihood", requests[index][0], answers[index])
        return answers

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """A text's log-probability, in windows of ``max_length`` tokens after a prefix
        token (lm-eval's rolling windows, as the hf model runs them)."""
        totals = []
        for (string,) in [request.args for request in requests]:
            windows = [
                ((None, None), *make_disjoint_window(window))
                for window in get_rolling_token_windows(
                    token_list=self.tok_encode(string),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length,
                    context_len=1,
                )
            ]
            total = sum(logprob for logprob, _ in self._loglikelihood_tokens(windows))
            self.cache_hook.add_partial("loglikelihood_rolling", (string,), total)
            totals.append(total)
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy answers, stopped at an end-of-generation token, at ``max_gen_toks`` or
        at the first of the task's ``until`` strings (cut there), as the hf model's."""
        import llama_cpp

        eos = self.tok_decode([self.eot_token_id], special=True)
        vocab = llama_cpp.llama_model_get_vocab(self.vocab_file.model)
        answers = []
        for context, gen_kwargs in [request.args for request in requests]:
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            if kwargs.get("do_sample"):
                raise ValueError("the llama-cpp model answers greedily: do_sample must be false")
            until = handle_stop_sequences(kwargs.get("until"), eos=eos)
            budget = kwargs["max_gen_toks"]
            tokens = self.tok_encode(context)[-(self.max_length - budget) :]
            llm = self._model(len(tokens) + budget)
            answer: list[int] = []
            for token in llm.generate(tokens, temp=0.0, top_k=1, reset=True):
                if llama_cpp.llama_vocab_is_eog(vocab, token) or len(answer) == budget:
                    break
                answer.append(token)
                if any(stop in self.tok_decode(answer) for stop in until):
                    break
            text = self.tok_decode(answer)
            for stop in until:
                text = text.split(stop)[0]
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            answers.append(text)
        return answers


def register() -> None:
    """Make ``LLAMA_CPP_MODEL`` known to lm-eval's registry, beside its own models."""
    import lm_eval.models  # noqa: F401  (lm-eval's models first: a registry not empty skips them)
    from lm_eval.api.registry import model_registry

    if LLAMA_CPP_MODEL not in model_registry:
        model_registry.register(LLAMA_CPP_MODEL, target=f"{__name__}:{LlamaCppLM.__name__}")


if __name__ == "__main__":
    from lm_eval.__main__ import cli_evaluate

    register()
    cli_evaluate()
