"""Build the prompt corpora shipped in data/ (run once; the JSONL files are committed).

reference.jsonl  the in-distribution set: short chat Q&A, summarization,
                 instruction following and code prompts, each with a reference
                 answer used for perplexity and exact-match scoring.
shifted.jsonl    a deliberately shifted set for drift scenarios: another domain
                 (finance, clinical, legal filings), a long multi-paragraph
                 length profile and a formal report style.

Every reference answer is correct by construction (computed from the same
tables that write the prompt), so the quality numbers measured on it mean
something. Deterministic: same output on every run.

    python data/build_corpus.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

CAPITALS = [
    ("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"), ("Spain", "Madrid"),
    ("Germany", "Berlin"), ("Canada", "Ottawa"), ("Australia", "Canberra"), ("Egypt", "Cairo"),
    ("Kenya", "Nairobi"), ("Brazil", "Brasilia"), ("Argentina", "Buenos Aires"), ("Peru", "Lima"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Poland", "Warsaw"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Hungary", "Budapest"), ("Mexico", "Mexico City"), ("India", "New Delhi"), ("China", "Beijing"),
    ("Thailand", "Bangkok"), ("Vietnam", "Hanoi"), ("Chile", "Santiago"), ("Turkey", "Ankara"),
]
FACTS = [
    ("How many days are in a week?", "There are seven days in a week."),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air."),
    ("What is the boiling point of water at sea level in Celsius?", "Water boils at 100 degrees Celsius at sea level."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("What do bees make?", "Bees make honey and beeswax."),
    ("How many continents are there?", "There are seven continents."),
    ("What is frozen water called?", "Frozen water is called ice."),
    ("Which organ pumps blood through the body?", "The heart pumps blood through the body."),
    ("What color is the sky on a clear day?", "The sky is blue on a clear day."),
    ("How many hours are in a day?", "There are 24 hours in a day."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("Which animal is known as the king of the jungle?", "The lion is known as the king of the jungle."),
    ("What is the main language spoken in Brazil?", "The main language spoken in Brazil is Portuguese."),
    ("How many minutes are in an hour?", "There are 60 minutes in an hour."),
    ("What is the tallest mountain in the world?", "Mount Everest is the tallest mountain in the world."),
    ("What star is at the center of our solar system?", "The Sun is at the center of our solar system."),
    ("What do you call a baby cat?", "A baby cat is called a kitten."),
    ("Which season comes after winter?", "Spring comes after winter."),
    ("How many sides does a triangle have?", "A triangle has three sides."),
    ("What is the freezing point of water in Celsius?", "Water freezes at 0 degrees Celsius."),
    ("What instrument has black and white keys?", "The piano has black and white keys."),
]
TOWNS = ["Millbrook", "Ashford", "Riverton", "Oakridge", "Lakeview", "Fairhaven", "Brookfield",
         "Cedar Falls", "Westport", "Greenville", "Hillcrest", "Stonebridge"]
FACILITIES = [("library", "books", "a reading garden"), ("sports center", "lockers", "an indoor pool"),
              ("community clinic", "beds", "a pharmacy"), ("school", "classrooms", "a science lab"),
              ("market hall", "stalls", "a food court")]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
NAMES = ["Maria", "James", "Aisha", "Chen", "Lucas", "Priya", "Omar", "Sofia", "Noah", "Yuki"]
VERBS = [("walk", "walked"), ("play", "played"), ("cook", "cooked"), ("paint", "painted"),
         ("clean", "cleaned"), ("watch", "watched"), ("visit", "visited"), ("open", "opened")]
OBJECTS = ["the park", "the garden", "the kitchen", "the museum", "the old house", "the river"]
CODE_TASKS = [
    ("returns the sum of a list of numbers", "sum_list", "def sum_list(xs):\n    return sum(xs)",
     "function sumList(xs) {\n  return xs.reduce((a, b) => a + b, 0);\n}"),
    ("returns the largest number in a list", "max_value", "def max_value(xs):\n    return max(xs)",
     "function maxValue(xs) {\n  return Math.max(...xs);\n}"),
    ("returns the smallest number in a list", "min_value", "def min_value(xs):\n    return min(xs)",
     "function minValue(xs) {\n  return Math.min(...xs);\n}"),
    ("reverses a string", "reverse_string", "def reverse_string(s):\n    return s[::-1]",
     "function reverseString(s) {\n  return s.split('').reverse().join('');\n}"),
    ("counts the vowels in a string", "count_vowels",
     "def count_vowels(s):\n    return sum(1 for c in s.lower() if c in 'aeiou')",
     "function countVowels(s) {\n  return (s.toLowerCase().match(/[aeiou]/g) || []).length;\n}"),
    ("computes the factorial of n", "factorial",
     "def factorial(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
     "function factorial(n) {\n  let result = 1;\n  for (let i = 2; i <= n; i++) result *= i;\n  return result;\n}"),
    ("returns the n-th Fibonacci number", "fibonacci",
     "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     "function fibonacci(n) {\n  let a = 0, b = 1;\n  for (let i = 0; i < n; i++) [a, b] = [b, a + b];\n  return a;\n}"),
    ("checks whether a number is prime", "is_prime",
     "def is_prime(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True",
     "function isPrime(n) {\n  if (n < 2) return false;\n  for (let i = 2; i * i <= n; i++) if (n % i === 0) return false;\n  return true;\n}"),
    ("checks whether a string is a palindrome", "is_palindrome",
     "def is_palindrome(s):\n    return s == s[::-1]",
     "function isPalindrome(s) {\n  return s === s.split('').reverse().join('');\n}"),
    ("returns the even numbers of a list", "even_numbers",
     "def even_numbers(xs):\n    return [x for x in xs if x % 2 == 0]",
     "function evenNumbers(xs) {\n  return xs.filter((x) => x % 2 === 0);\n}"),
    ("returns the average of a list of numbers", "average",
     "def average(xs):\n    return sum(xs) / len(xs)",
     "function average(xs) {\n  return xs.reduce((a, b) => a + b, 0) / xs.length;\n}"),
    ("removes duplicates from a list while keeping order", "unique",
     "def unique(xs):\n    return list(dict.fromkeys(xs))",
     "function unique(xs) {\n  return [...new Set(xs)];\n}"),
    ("counts the words in a sentence", "word_count",
     "def word_count(s):\n    return len(s.split())",
     "function wordCount(s) {\n  return s.split(/\\s+/).filter(Boolean).length;\n}"),
    ("converts Celsius to Fahrenheit", "c_to_f",
     "def c_to_f(c):\n    return c * 9 / 5 + 32",
     "function cToF(c) {\n  return (c * 9) / 5 + 32;\n}"),
    ("returns the square of every number in a list", "squares",
     "def squares(xs):\n    return [x * x for x in xs]",
     "function squares(xs) {\n  return xs.map((x) => x * x);\n}"),
    ("merges two sorted lists into one sorted list", "merge_sorted",
     "def merge_sorted(a, b):\n    return sorted(a + b)",
     "function mergeSorted(a, b) {\n  return [...a, ...b].sort((x, y) => x - y);\n}"),
    ("returns the greatest common divisor of two integers", "gcd",
     "def gcd(a, b):\n    while b:\n        a, b = b, a % b\n    return a",
     "function gcd(a, b) {\n  while (b) [a, b] = [b, a % b];\n  return a;\n}"),
    ("capitalizes the first letter of every word", "title_case",
     "def title_case(s):\n    return ' '.join(w[:1].upper() + w[1:] for w in s.split())",
     "function titleCase(s) {\n  return s.split(' ').map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join(' ');\n}"),
    ("counts how often each character occurs in a string", "char_counts",
     "def char_counts(s):\n    counts = {}\n    for c in s:\n        counts[c] = counts.get(c, 0) + 1\n    return counts",
     "function charCounts(s) {\n  const counts = {};\n  for (const c of s) counts[c] = (counts[c] || 0) + 1;\n  return counts;\n}"),
    ("flattens a list of lists", "flatten",
     "def flatten(xss):\n    return [x for xs in xss for x in xs]",
     "function flatten(xss) {\n  return xss.flat();\n}"),
    ("returns the length of the longest word in a sentence", "longest_word_length",
     "def longest_word_length(s):\n    return max(len(w) for w in s.split())",
     "function longestWordLength(s) {\n  return Math.max(...s.split(' ').map((w) => w.length));\n}"),
    ("checks whether a year is a leap year", "is_leap_year",
     "def is_leap_year(y):\n    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)",
     "function isLeapYear(y) {\n  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);\n}"),
    ("returns the sum of the digits of an integer", "digit_sum",
     "def digit_sum(n):\n    return sum(int(d) for d in str(abs(n)))",
     "function digitSum(n) {\n  return String(Math.abs(n)).split('').reduce((a, d) => a + Number(d), 0);\n}"),
    ("returns the last element of a list", "last_element",
     "def last_element(xs):\n    return xs[-1]",
     "function lastElement(xs) {\n  return xs[xs.length - 1];\n}"),
    ("counts the positive numbers in a list", "count_positive",
     "def count_positive(xs):\n    return sum(1 for x in xs if x > 0)",
     "function countPositive(xs) {\n  return xs.filter((x) => x > 0).length;\n}"),
]


def reference(rng: random.Random) -> list[dict]:
    rows: list[dict] = []

    def add(kind: str, prompt: str, ref: str) -> None:
        rows.append({"id": f"ref-{len(rows):04d}", "kind": kind, "prompt": prompt, "reference": ref})

    # chat Q&A: capitals in two phrasings, then general facts
    for country, capital in CAPITALS:
        add("chat_qa", f"What is the capital of {country}?", f"The capital of {country} is {capital}.")
    for country, capital in CAPITALS[:12]:
        add("chat_qa", f"Which city is the capital of {country}? Answer in one sentence.",
            f"{capital} is the capital of {country}.")
    for q, a in FACTS:
        add("chat_qa", q, a)

    # summarization: short local-news paragraphs
    combos = [(t, f) for t in TOWNS for f in FACILITIES]
    rng.shuffle(combos)
    for town, (facility, unit, extra) in combos[:56]:
        n = rng.randrange(20, 400)
        cost = rng.randrange(2, 40)
        day = rng.choice(DAYS)
        text = (f"The town of {town} opened a new {facility} on {day}. The building has {n} {unit} "
                f"and {extra}. It cost {cost} million dollars, paid for by a regional grant. "
                f"The mayor said the {facility} would serve families across the whole valley.")
        add("summarization", f"Summarize the following text in one sentence.\n\n{text}",
            f"{town} opened a new {facility} with {n} {unit} and {extra}, funded by a {cost} million dollar regional grant.")

    # instruction following: transformations whose answers are computed
    for i in range(14):
        name, (verb, past), obj = NAMES[i % len(NAMES)], VERBS[i % len(VERBS)], OBJECTS[i % len(OBJECTS)]
        add("instruction", f"Rewrite this sentence in the past tense: {name} will {verb} in {obj}.",
            f"{name} {past} in {obj}.")
    for i in range(14):
        xs = rng.sample(range(1, 100), 5)
        add("instruction", f"Sort these numbers from smallest to largest: {', '.join(map(str, xs))}.",
            ", ".join(map(str, sorted(xs))))
    for i in range(12):
        a, b = rng.randrange(10, 99), rng.randrange(10, 99)
        add("instruction", f"Add {a} and {b}. Reply with the number only.", str(a + b))
    for i in range(12):
        words = rng.sample(["apple", "river", "cloud", "stone", "music", "forest", "candle", "window",
                            "garden", "silver", "planet", "bridge"], 3)
        add("instruction", f"Write these words in upper case, separated by commas: {' '.join(words)}.",
            ", ".join(w.upper() for w in words))

    # code: Python and JavaScript
    for phrase, _name, py, js in CODE_TASKS:
        add("code", f"Write a Python function that {phrase}.", py)
        add("code", f"Write a JavaScript function that {phrase}.", js)
    return rows


COMPANIES = ["Northwind Holdings", "Helix Biotech", "Granite Capital", "Meridian Freight", "Solace Health",
             "Aurora Semiconductors", "Crescent Insurance", "Pinnacle Retail", "Vanguard Mining", "Tidewater Energy"]
CLAUSES = ["indemnification", "limitation of liability", "termination for convenience", "force majeure",
           "assignment", "confidentiality", "governing law", "non-solicitation"]
CONDITIONS = [("hypertension", "lisinopril"), ("type 2 diabetes", "metformin"), ("asthma", "albuterol"),
              ("atrial fibrillation", "apixaban"), ("hypothyroidism", "levothyroxine"),
              ("major depressive disorder", "sertraline")]


def shifted(rng: random.Random) -> list[dict]:
    rows: list[dict] = []

    def add(kind: str, prompt: str, ref: str) -> None:
        rows.append({"id": f"shift-{len(rows):04d}", "kind": kind, "prompt": prompt, "reference": ref})

    for i in range(30):
        co = COMPANIES[i % len(COMPANIES)]
        q = f"Q{1 + i % 4}"
        rev, prev = rng.randrange(200, 9000), rng.randrange(200, 9000)
        cash, debt = rng.randrange(50, 3000), rng.randrange(50, 5000)
        margin = rng.randrange(3, 40)
        growth = (rev - prev) / prev * 100
        prompt = (
            f"MANAGEMENT'S DISCUSSION AND ANALYSIS — {co}, fiscal {q}.\n\n"
            f"Consolidated net revenue for the quarter amounted to USD {rev} million, compared with USD {prev} million "
            f"in the corresponding period of the prior fiscal year. Operating margin was {margin} percent, reflecting "
            f"the continued amortization of acquired intangibles, elevated logistics expenditure and the phasing of "
            f"certain non-recurring restructuring charges recognized under the Company's transformation programme.\n\n"
            f"As at the balance-sheet date the Company held cash and cash equivalents of USD {cash} million against "
            f"aggregate principal indebtedness of USD {debt} million under its senior unsecured notes and revolving "
            f"credit facility. Management continues to evaluate covenant headroom in light of prevailing market conditions.\n\n"
            f"Prepare a formal analyst memorandum assessing (i) revenue development, (ii) profitability and "
            f"(iii) the liquidity and leverage position, and state whether net debt is positive or negative."
        )
        net = debt - cash
        ref = (
            f"Revenue changed by {growth:+.1f} percent to USD {rev} million. Operating margin stood at {margin} percent. "
            f"Net debt is USD {abs(net)} million {'positive' if net > 0 else 'negative'}: "
            f"{'indebtedness exceeds cash' if net > 0 else 'cash exceeds indebtedness'}."
        )
        add("finance_filing", prompt, ref)
    for i in range(25):
        cond, drug = CONDITIONS[i % len(CONDITIONS)]
        age = rng.randrange(34, 88)
        sbp, dbp = rng.randrange(110, 180), rng.randrange(60, 110)
        hba1c = rng.randrange(50, 110) / 10
        sex = rng.choice(["male", "female"])
        prompt = (
            f"CLINICAL CASE SUMMARY (de-identified, case {i + 1}).\n\n"
            f"A {age}-year-old {sex} patient with a documented history of {cond} presents for scheduled review. "
            f"Current pharmacotherapy includes {drug} at the previously titrated dose; adherence is reported as "
            f"satisfactory, although the patient describes intermittent fatigue and reduced exercise tolerance over "
            f"the preceding eight weeks. Vital signs: blood pressure {sbp}/{dbp} mmHg; HbA1c {hba1c:.1f} percent.\n\n"
            f"Compose a structured assessment in the style of a specialist consultation letter, covering the "
            f"principal diagnosis, current therapy and whether the blood pressure is within the target of 140/90 mmHg."
        )
        ok = sbp < 140 and dbp < 90
        ref = (f"Principal diagnosis: {cond}. Current therapy: {drug}. Blood pressure {sbp}/{dbp} mmHg is "
               f"{'within' if ok else 'above'} the 140/90 mmHg target.")
        add("clinical_note", prompt, ref)
    for i in range(25):
        clause = CLAUSES[i % len(CLAUSES)]
        a, b = rng.sample(COMPANIES, 2)
        days = rng.choice([15, 30, 45, 60, 90])
        cap = rng.randrange(1, 20)
        prompt = (
            f"MASTER SERVICES AGREEMENT — EXTRACT, SECTION {10 + i}.\n\n"
            f"This Agreement is entered into by and between {a} (the \"Supplier\") and {b} (the \"Customer\"). "
            f"Notwithstanding anything to the contrary herein, the {clause} provisions set forth in this Section shall "
            f"survive any expiry or termination hereof. Either Party may invoke this Section upon not less than {days} "
            f"days' prior written notice to the other Party, and the aggregate liability of the Supplier arising "
            f"hereunder shall in no event exceed USD {cap} million.\n\n"
            f"Provide a formal legal opinion identifying the parties, the clause concerned, the notice period and the "
            f"liability cap, and advise whether the clause survives termination."
        )
        ref = (f"Parties: {a} (Supplier) and {b} (Customer). Clause: {clause}. Notice period: {days} days. "
               f"Liability cap: USD {cap} million. The clause survives termination.")
        add("legal_contract", prompt, ref)
    return rows


def main() -> None:
    rng = random.Random(20261204)
    for name, rows in (("reference.jsonl", reference(rng)), ("shifted.jsonl", shifted(rng))):
        tmp = HERE / (name + ".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(HERE / name)
        print(f"{name}: {len(rows)} prompts")


if __name__ == "__main__":
    main()
