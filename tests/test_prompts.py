
from helpers import ROOT
from summarizer.config import load_params
from summarizer.prompts import build_few_shot_prompt, build_prompt, fit_few_shot_prompt

CFG = load_params(ROOT / "params.yaml").prompt
DIALOGUE = "#Person1#: Hi, {braces} stay.\n#Person2#: Hello."


def test_instruction_template_exact_text():
    assert build_prompt(DIALOGUE, CFG.template) == (
        "Summarize the following conversation.\n\n#Person1#: Hi, {braces} stay.\n#Person2#: Hello.\n\nSummary: ")


def test_flan_template_exact_text():
    assert build_prompt(DIALOGUE, CFG.flan_template) == (
        "Dialogue:\n\n#Person1#: Hi, {braces} stay.\n#Person2#: Hello.\n\nWhat was going on?\n")


def test_few_shot_exact_text():
    text = build_few_shot_prompt("D", [("A", "sa"), ("B", "sb")], CFG.flan_template)
    assert text == ("Dialogue:\n\nA\n\nWhat was going on?\nsa\n\n\n"
                    "Dialogue:\n\nB\n\nWhat was going on?\nsb\n\n\n"
                    "Dialogue:\n\nD\n\nWhat was going on?\n")


def words(text):
    return len(text.split())


def test_few_shot_budget_drops_examples_not_the_dialogue():
    examples = [("one two three four five", "s1"), ("six seven eight nine ten", "s2")]
    target = "the dialogue to summarize"
    full = words(build_few_shot_prompt(target, examples, CFG.flan_template))
    fitted = fit_few_shot_prompt(target, examples, CFG.flan_template, words, full - 1)
    assert (fitted.examples_used, fitted.examples_dropped, fitted.dialogue_truncated) == (1, 1, False)
    assert fitted.text.endswith(build_prompt(target, CFG.flan_template))
    assert "six seven" not in fitted.text
    assert fit_few_shot_prompt(target, examples, CFG.flan_template, words, full).examples_used == 2


def test_few_shot_dialogue_too_long_is_reported():
    fitted = fit_few_shot_prompt("a " * 100, [("x", "y")], CFG.flan_template, words, 10)
    assert fitted.examples_used == 0 and fitted.dialogue_truncated
    assert words(fitted.text) == 10 and fitted.text.endswith("\n\nWhat was going on?\n")  # the template whole


def test_each_strategy_prompt_exact_text():
    from summarizer.prompts import strategy_prompts

    pool = [("#Person1#: A.\n#Person2#: B.", "They talk."), ("#Person1#: C.", "One line.")]
    dialogue = [("test_0", "#Person1#: Hi.\n#Person2#: Hello.")]
    kwargs = dict(template=CFG.template, flan_template=CFG.flan_template, few_shot_examples=2, seed=0,
                  count_tokens=words, max_tokens=1000)
    texts = {s: strategy_prompts(s, dialogue, pool, **kwargs)[0][0]
             for s in ("none", "zero_shot", "zero_shot_flan", "one_shot", "few_shot")}
    assert texts["none"] == "#Person1#: Hi.\n#Person2#: Hello."
    assert texts["zero_shot"] == ("Summarize the following conversation.\n\n#Person1#: Hi.\n#Person2#: Hello.\n\n"
                                  "Summary: ")
    assert texts["zero_shot_flan"] == "Dialogue:\n\n#Person1#: Hi.\n#Person2#: Hello.\n\nWhat was going on?\n"
    one = texts["one_shot"].split("\n\n\n")
    assert len(one) == 2 and one[1] == texts["zero_shot_flan"]
    assert one[0] in {f"Dialogue:\n\n{d}\n\nWhat was going on?\n{s}" for d, s in pool}
    few = texts["few_shot"].split("\n\n\n")
    assert len(few) == 3 and few[2] == texts["zero_shot_flan"]
    assert sorted(few[:2]) == sorted(f"Dialogue:\n\n{d}\n\nWhat was going on?\n{s}" for d, s in pool)


def test_a_long_dialogue_is_cut_not_the_template():
    """Right truncation of the tokenized prompt removed the instruction at its end ("Summary: ")."""
    from summarizer.prompts import fit_prompt

    dialogue = " ".join(f"w{i}" for i in range(100))
    text, cut = fit_prompt(dialogue, CFG.template, words, 50)
    assert cut and words(text) == 50
    assert text.startswith("Summarize the following conversation.\n\nw0 w1") and text.endswith("\n\nSummary: ")
    assert fit_prompt("short talk", CFG.template, words, 50) == (build_prompt("short talk", CFG.template), False)


def test_few_shot_gets_all_its_examples_when_short_ones_exist():
    """Three random examples rarely fit 512 tokens beside a DialogSum dialogue, so few-shot was one-shot in
    practice; examples short enough for the budget are drawn instead (by seed), and each prompt's count is kept."""
    from summarizer.prompts import strategy_prompts

    pool = [(" ".join(["long"] * 300), "s")] * 40 + [(f"short {i}", f"s{i}") for i in range(10)]
    dialogues = [(f"test_{i}", " ".join(["talk"] * 60)) for i in range(20)]
    kwargs = dict(template=CFG.template, flan_template=CFG.flan_template, few_shot_examples=3,
                  count_tokens=words, max_tokens=120)
    prompts, stats = strategy_prompts("few_shot", dialogues, pool, seed=0, **kwargs)
    assert stats["examples_used"] == [3] * 20 and stats["examples_dropped"] == 0
    assert stats["examples_used_counts"] == {"0": 0, "1": 0, "2": 0, "3": 20}
    assert all(words(p) <= 120 for p in prompts)
    assert len({p for p in prompts}) > 1, "examples differ across dialogues"
    again, _ = strategy_prompts("few_shot", dialogues, pool, seed=0, **kwargs)
    assert again == prompts  # deterministic for a seed
