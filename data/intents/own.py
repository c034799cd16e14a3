"""Our own prompts for the intent classifier: written for this project (not copied from any
dataset), combined from phrase lists with a fixed seed. They cover what the public training
sets lack: counterfactuals, deduction puzzles, trade-offs and "why" questions (reasoning);
everyday chat, writing and STEM explanations (general); stack traces, SQL, shell and configs
in many languages (code); word problems without symbols (math); a few other languages.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

NAMES = [
    "Alice",
    "Bob",
    "Carol",
    "Dave",
    "Erin",
    "Frank",
    "Grace",
    "Heidi",
    "Ivan",
    "Judy",
    "Mallory",
    "Niaj",
    "Olivia",
    "Peggy",
    "Rupert",
    "Sybil",
    "Trent",
    "Victor",
    "Walter",
    "Yusuf",
    "Zoe",
    "Amara",
    "Bruno",
    "Chen",
    "Dana",
    "Emeka",
    "Fatima",
    "Goran",
    "Hana",
    "Ines",
]


def _pick(rng: random.Random, items: list[str] | tuple[str, ...]) -> str:
    return items[rng.randrange(len(items))]


# --- reasoning ----------------------------------------------------------------------------

COUNTERFACTUAL_SUBJECTS = [
    "Isaac Newton had never seen the apple fall",
    "Newton had become a lawyer instead of a physicist",
    "the printing press had been invented a thousand years earlier",
    "the Roman Empire had never fallen",
    "humans had never domesticated dogs",
    "the internet had been invented in the 1800s",
    "the Library of Alexandria had survived",
    "the dinosaurs had not gone extinct",
    "electricity had never been harnessed",
    "Columbus had never sailed west",
    "the Moon did not exist",
    "everyone could read each other's thoughts",
    "penicillin had never been discovered",
    "the Earth had no axial tilt",
    "money had never been invented",
    "cars had never replaced horses",
    "Einstein had stayed a patent clerk and never published",
    "the steam engine had failed commercially",
    "the Black Death had never happened",
    "humans needed only two hours of sleep",
    "the Cold War had turned hot in 1962",
    "smartphones had never been invented",
    "Alan Turing had lived another forty years",
    "the Beatles had never met",
    "water expanded less when it froze",
    "the Wright brothers had given up",
    "gravity were twice as strong",
    "Shakespeare had written in Latin",
    "the Americas had been settled from Africa first",
    "plants could walk",
]
COUNTERFACTUAL_FRAMES = [
    "What if {s}?",
    "What would have happened if {s}?",
    "How would the world be different if {s}?",
    "Imagine {s}. What would change, and why?",
    "Suppose {s}. Walk me through the likely consequences.",
    "Think about a world where {s}. How would science and society have developed?",
    "If {s}, how would history have turned out?",
    "Counterfactual: {s}. What are the second-order effects?",
    "what if {s}... would we even notice today?",
    "Hypothetically, if {s}, which of today's technologies would not exist?",
]

ORDER_RELATIONS = [
    ("finished before", "finished after", "Who finished last?", "race"),
    ("is taller than", "is shorter than", "Who is the tallest?", "height"),
    ("arrived earlier than", "arrived later than", "Who arrived first?", "party"),
    ("is older than", "is younger than", "Who is the youngest?", "age"),
    ("sits to the left of", "sits to the right of", "Who sits in the middle?", "bench"),
    ("scored higher than", "scored lower than", "Who ranked second?", "exam"),
]


def ordering_puzzle(rng: random.Random) -> str:
    n = rng.choice([3, 4, 5])
    people = rng.sample(NAMES, n)
    order = people[:]
    rng.shuffle(order)
    rel, inv, question, _ = rng.choice(ORDER_RELATIONS)
    facts = []
    for a, b in itertools.pairwise(order):
        facts.append(f"{a} {rel} {b}." if rng.random() < 0.6 else f"{b} {inv} {a}.")
    rng.shuffle(facts)
    intro = rng.choice(
        [
            f"{', '.join(people[:-1])} and {people[-1]} took part.",
            "Consider the following statements.",
            "Here is a small logic puzzle.",
            "",
        ]
    )
    return f"{intro} {' '.join(facts)} {question}".strip()


def truth_puzzle(rng: random.Random) -> str:
    people = rng.sample(NAMES, rng.choice([3, 4, 5]))
    parts = [f"{people[0]} {rng.choice(['lies', 'tells the truth'])}."]
    for a, b in zip(people[1:], people, strict=False):
        parts.append(f"{a} says {b} {rng.choice(['lies', 'tells the truth'])}.")
    return " ".join(parts) + f" Does {people[-1]} tell the truth?"


def knights_puzzle(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    claims = [
        f'{a} says: "We are both knaves."',
        f'{a} says: "At least one of us is a knave."',
        f'{a} says: "{b} is a knight." {b} says: "{a} and I are different."',
        f'{a} says: "If I am a knight, then {b} is a knave."',
        f'{b} says: "{a} would say that I am a knave."',
    ]
    setting = rng.choice(
        [
            "On an island, knights always tell the truth and knaves always lie.",
            "Every inhabitant of this village is either a truth-teller or a liar.",
        ]
    )
    return f"{setting} {rng.choice(claims)} What are {a} and {b}?"


SYLLOGISM_TERMS = [
    ("cats", "mammals", "animals that sleep a lot"),
    ("managers", "employees", "people who attend the meeting"),
    ("roses", "flowers", "things that fade quickly"),
    ("poets", "writers", "dreamers"),
    ("squares", "rectangles", "shapes with four sides"),
    ("violinists", "musicians", "early risers"),
    ("doctors", "graduates", "people who like chess"),
    ("birds", "animals with feathers", "things that can fly"),
]


def syllogism(rng: random.Random) -> str:
    a, b, c = rng.choice(SYLLOGISM_TERMS)
    premise = rng.choice(
        [
            f"All {a} are {b}. Some {b} are {c}.",
            f"No {a} are {c}. All {b} are {c}.",
            f"All {a} are {b}. No {b} are {c}.",
            f"Some {a} are not {c}. All {a} are {b}.",
        ]
    )
    ask = rng.choice(
        [
            f"Does it follow that some {a} are {c}?",
            f"Can we conclude that no {a} are {c}?",
            "Is the argument valid?",
            "Which conclusion, if any, follows logically?",
            "Is this deductive argument valid or is it a fallacy?",
        ]
    )
    return f"{premise} {ask}"


CONDITIONAL = [
    "If it rains, the match is cancelled. The match was not cancelled. Did it rain?",
    "If the alarm is set, the light is on. The light is on. Is the alarm set?",
    "Every employee with a badge can enter. Sam cannot enter. What can we infer about Sam?",
    "When the shop is open, the sign is lit. The sign is dark. Is the shop open?",
    "If Priya studies, she passes. If she passes, she celebrates. She did not celebrate. "
    "What do we know?",
    "Either the butler or the gardener did it. The gardener was abroad. Who did it, and how "
    "sure can we be?",
    "Three boxes are labelled apples, oranges and mixed, and every label is wrong. You may "
    "draw one fruit from one box. How do you relabel them?",
    "A man looks at a portrait and says: brothers and sisters I have none, but that man's "
    "father is my father's son. Who is in the portrait?",
    "You have two ropes that each burn for an hour, unevenly. How do you measure 45 minutes?",
    "Five pirates must split 100 coins by seniority voting. What does the senior pirate "
    "propose, and why does it pass?",
    "A farmer must ferry a wolf, a goat and a cabbage across a river, one at a time. How?",
    "Which weighs more, a kilo of feathers or a kilo of steel? Explain the trick.",
    "If all the clocks in a town are five minutes fast but everyone knows it, does it matter?",
    "I'm facing north, turn right, turn right again, then left. Which way am I facing?",
    "Take 3 steps forward, turn around, take 5 steps, turn around, take 2 steps. Where am I "
    "relative to the start?",
    "The day before yesterday was Thursday. What day will it be the day after tomorrow?",
    "A bat and a ball cost a dollar ten; the bat costs a dollar more than the ball. Why do "
    "most people get this wrong?",
    "A is B's sister, C is B's mother, D is C's father. How is A related to D?",
]

WHY_TOPICS = [
    "the Roman Republic collapse",
    "the 2008 financial crisis happen",
    "the Soviet Union break apart",
    "the dot-com bubble burst",
    "Blockbuster fail while Netflix thrived",
    "the Library of Alexandria decline",
    "the Industrial Revolution start in Britain",
    "Kodak miss the digital camera shift",
    "the Maya cities get abandoned",
    "the Titanic sink so quickly",
    "our team's velocity drop after the reorg",
    "the Bronze Age collapse happen",
    "inflation spike in 2022",
    "Esperanto never become a world language",
    "the Concorde get retired",
]
WHY_FRAMES = [
    "Why did {t}? Analyze the main causes.",
    "What caused {t}? Weigh the competing explanations.",
    "How come {t}? Think it through step by step.",
    "Explain the chain of causes and effects that made {t}.",
    "Which factors mattered most in making {t}, and how do they interact?",
]

DECISIONS = [
    ("rent", "buy a house in a city where I may stay only three years"),
    ("accept the startup offer", "stay at my stable corporate job"),
    ("build our analytics in-house", "buy a vendor product"),
    ("migrate to microservices", "keep the monolith"),
    ("hire two juniors", "hire one senior engineer"),
    ("launch now with known bugs", "delay the launch by a month"),
    ("go to grad school", "start working right away"),
    ("expand into Europe", "focus on the home market"),
    ("move the team to a four-day week", "keep five days with flexible hours"),
    ("pay off my student loan", "invest the money"),
    ("open-source the library", "keep it proprietary"),
    ("raise prices", "cut costs"),
    ("adopt nuclear power", "invest only in renewables"),
    ("outsource support", "grow an internal team"),
]
DECISION_FRAMES = [
    "Should we {a} or {b}? Weigh the trade-offs.",
    "I'm torn: {a} or {b}. What would you consider, and what would you pick?",
    "Compare the risks of choosing to {a} versus {b}.",
    "What are the pros and cons of deciding to {a} rather than {b}?",
    "Play devil's advocate: argue against the plan to {a} instead of {b}.",
    "Help me decide between these two: {a}, or {b}. Think carefully about second-order effects.",
]

ANALYSIS = [
    "Evaluate the argument that remote work lowers productivity. Where is it weakest?",
    "Critique this plan: we will double revenue by halving prices. What assumptions break?",
    "A study found people who drink coffee live longer. Can we conclude coffee causes a "
    "longer life? What else could explain it?",
    "Our sales rose after we changed the logo. Is it reasonable to credit the logo?",
    "Identify the logical flaw: every time I wash my car it rains, so washing my car causes rain.",
    "Is it ever rational to buy a lottery ticket? Argue both sides.",
    "The town banned cars downtown and shop revenue fell. The mayor says the ban failed. "
    "What other explanations should be ruled out first?",
    "Which assumption, if true, most strengthens the claim that the new school policy "
    "improved test scores?",
    "Find the hidden assumption in: 'Our competitor cut prices, so they must be in trouble.'",
    "Two witnesses give conflicting accounts of the accident. How would you decide whom to "
    "believe?",
    "Poke holes in my reasoning: crime dropped after we installed cameras, so cameras work.",
    "What is the strongest objection to utilitarianism, and how would a utilitarian reply?",
    "If a self-driving car must choose between two harms, what principles should decide?",
    "Is the trolley problem a useful guide for real policy? Reason it out.",
    "Root-cause this in prose: deliveries are late only on Mondays and only from one warehouse.",
    "Our churn doubled after the redesign, but so did sign-ups. Is the redesign to blame?",
    "Can a ship that has had every plank replaced still be the same ship? Reason it through.",
    "A says B is lying, B says C is lying, C says A and B are both lying. Who is telling the "
    "truth?",
]

REASONING_OTHER_LANG = [
    "¿Qué habría pasado si Napoleón hubiera ganado en Waterloo? Razona las consecuencias.",
    "¿Por qué cayó el Imperio romano de Occidente? Analiza las causas principales.",
    "Todos los gatos son mamíferos y algunos mamíferos nadan. ¿Se deduce que algunos gatos nadan?",
    "Que se serait-il passé si l'imprimerie n'avait jamais été inventée ? Raisonne étape par "
    "étape.",
    "Pourquoi la révolution industrielle a-t-elle commencé en Angleterre ? Pèse les explications.",
    "Si Paul est plus grand que Marie et Marie plus grande que Luc, qui est le plus petit ?",
    "Was wäre passiert, wenn es das Internet nie gegeben hätte? Denk Schritt für Schritt.",
    "Sollten wir mieten oder kaufen, wenn wir nur drei Jahre bleiben? Wäge Vor- und Nachteile ab.",
    "Anna ist älter als Ben, Ben ist älter als Clara. Wer ist am jüngsten und warum?",
    "E se o Brasil nunca tivesse sido colonizado por Portugal? Analise as consequências.",
    "Se tutti i medici sono laureati e nessun laureato è analfabeta, cosa possiamo concludere?",
]


ARGUMENTS = [
    (
        "A city added bike lanes and traffic accidents fell by a fifth the next year",
        "the bike lanes made the roads safer",
    ),
    (
        "Students who eat breakfast get better grades than those who skip it",
        "eating breakfast improves grades",
    ),
    (
        "Since the company began allowing remote work, employee turnover has dropped",
        "remote work reduces turnover",
    ),
    (
        "Most successful novelists write every morning",
        "writing every morning will make an author successful",
    ),
    (
        "The new fertilizer was used on the north field, which produced more wheat than the "
        "south field",
        "the fertilizer increases wheat yield",
    ),
    ("Countries with more television sets have longer life expectancy", "television extends life"),
    (
        "After the museum dropped its entry fee, attendance doubled but donations fell",
        "free entry is bad for the museum",
    ),
    (
        "Every expert consulted agreed the bridge was safe, and none of them had inspected it "
        "in person",
        "the bridge is safe",
    ),
    (
        "A survey of gym members found that most of them rarely get colds",
        "going to the gym prevents colds",
    ),
    (
        "Sales of umbrellas rise whenever sales of raincoats rise",
        "buying raincoats makes people buy umbrellas",
    ),
    (
        "The mayor's approval rating rose after the new park opened",
        "the park caused voters to like the mayor",
    ),
    (
        "Of the people who tried the diet, those who stayed on it lost weight",
        "the diet works for everyone",
    ),
]
ARGUMENT_ASKS = [
    "Which of the following, if true, most seriously weakens the argument?",
    "Which of the following, if true, most strengthens the argument?",
    "The argument above depends on which assumption?",
    "Which of the following best describes the flaw in the reasoning?",
    "Which conclusion can be most properly drawn from the statements above?",
    "Which of the following can be inferred from the passage?",
]
OPTION_BITS = [
    "the effect was observed before the change was made",
    "a similar change elsewhere had no effect",
    "other factors changed at the same time",
    "the sample was chosen at random",
    "the trend had already started years earlier",
    "the people surveyed were not representative",
    "the measure used was changed during the period",
    "the result was replicated in another city",
]


def argument(rng: random.Random) -> str:
    fact, claim = rng.choice(ARGUMENTS)
    lead = rng.choice(["", "Argument: ", "Passage: ", "Consider this reasoning. "])
    link = rng.choice([", so ", ". Therefore ", ". This shows that ", ". Clearly, "])
    text = f"{lead}{fact}{link}{claim}.\n{rng.choice(ARGUMENT_ASKS)}"
    if rng.random() < 0.7:
        letters = "ABCD" if rng.random() < 0.6 else "abcd"
        style = rng.choice(["{l}. ", "({l}) ", "{l}) "])
        opts = rng.sample(OPTION_BITS, 4)
        text += "\n" + "\n".join(
            style.format(l=letter) + o[0].upper() + o[1:]
            for letter, o in zip(letters, opts, strict=True)
        )
    return text


def with_options(rng: random.Random, puzzle: str, answers: list[str]) -> str:
    opts = rng.sample(answers, min(len(answers), rng.choice([3, 4, 5])))
    style = rng.choice(["({l}) ", "{l}. ", "{l}) "])
    lines = [style.format(l="ABCDE"[i]) + o for i, o in enumerate(opts)]
    sep = rng.choice(["\nOptions:\n", "\n", "\nChoices: "])
    return puzzle + sep + ("\n" if "\n" in sep else " ").join(lines)


def puzzles_with_options(rng: random.Random) -> list[str]:
    out = []
    for _ in range(120):
        text = ordering_puzzle(rng)
        names = [w.strip(".,") for w in text.split() if w.strip(".,") in NAMES]
        answers = sorted(set(names)) or ["Yes", "No"]
        out.append(with_options(rng, text, answers))
    for _ in range(40):
        out.append(with_options(rng, truth_puzzle(rng), ["Yes", "No"]))
    for _ in range(40):
        out.append(with_options(rng, syllogism(rng), ["valid", "invalid"]))
    return out


def reasoning(rng: random.Random) -> list[str]:
    out = [
        _pick(rng, COUNTERFACTUAL_FRAMES).format(s=s)
        for s in COUNTERFACTUAL_SUBJECTS
        for _ in range(4)
    ]
    out += [ordering_puzzle(rng) for _ in range(110)]
    out += [truth_puzzle(rng) for _ in range(40)]
    out += [knights_puzzle(rng) for _ in range(35)]
    out += [syllogism(rng) for _ in range(60)]
    out += CONDITIONAL * 2
    out += [f.format(t=t) for t in WHY_TOPICS for f in rng.sample(WHY_FRAMES, 2)]
    out += [f.format(a=a, b=b) for a, b in DECISIONS for f in rng.sample(DECISION_FRAMES, 3)]
    out += ANALYSIS * 2
    out += REASONING_OTHER_LANG * 2
    out += [argument(rng) for _ in range(220)]
    out += puzzles_with_options(rng)
    return out


# --- general --------------------------------------------------------------------------------

WRITE_KINDS = [
    "a short poem",
    "a haiku",
    "a limerick",
    "a wedding toast",
    "a cover letter",
    "a LinkedIn post",
    "a product description",
    "a bedtime story",
    "a blog post",
    "a thank-you note",
    "a tweet",
    "a speech",
    "a persuasive essay",
    "song lyrics",
    "a short story",
    "an apology email",
    "a press release",
    "a travel blog post",
    "a dialogue between two characters",
    "a restaurant review",
]
WRITE_TOPICS = [
    "autumn in Kyoto",
    "my grandmother's garden",
    "a startup launching a reusable water bottle",
    "the first day of school",
    "a dog who learns to surf",
    "our team hitting a big milestone",
    "moving to a new city",
    "the ocean at night",
    "a bakery that opens at 4am",
    "why I love public libraries",
    "a lost umbrella",
    "my best friend's 40th birthday",
    "a trip to Hawaii",
    "a retiring colleague",
    "a rainy Sunday",
    "the importance of sleep",
    "a small town festival",
    "the last bookstore in the city",
]
WRITE_FRAMES = [
    "Write {k} about {t}.",
    "Can you write {k} about {t}?",
    "Compose {k} on {t}, warm and a bit funny.",
    "Draft {k} about {t}. Keep it under 200 words.",
    "pls write {k} about {t}",
    "I need {k} about {t} for tomorrow.",
]
EVERYDAY = [
    "hi! how are you today?",
    "good morning :)",
    "thanks, that was helpful",
    "tell me a joke about penguins",
    "What's a good name for a golden retriever puppy?",
    "Give me a recipe for banana bread.",
    "How do I get red wine out of a carpet?",
    "What should I pack for a week in Iceland in March?",
    "Recommend three novels like The Night Circus.",
    "What's the capital of Australia?",
    "Who painted the Mona Lisa?",
    "When did the Berlin Wall fall?",
    "How tall is Mount Kilimanjaro?",
    "What language do they speak in Brazil?",
    "Who wrote Pride and Prejudice?",
    "Plan a 3-day itinerary for Lisbon.",
    "Suggest a vegetarian dinner for six people.",
    "How do I politely decline a wedding invitation?",
    "what time zone is Chicago in",
    "What are some fun things to do in Seoul with kids?",
    "Give me ten names for a coffee shop.",
    "Describe the taste of a mango to someone who has never had one.",
    "How often should I water a snake plant?",
    "Help me write a birthday message for my boss.",
    "What does 'carpe diem' mean?",
    "List some good icebreaker questions for a team meeting.",
    "How do you say 'thank you' in Japanese?",
    "Tell me about the history of the Eiffel Tower.",
    "who won the world cup in 2014",
    "what's the plural of octopus",
    "Give me a packing checklist for a beach holiday.",
    "I feel a bit down today, can you cheer me up?",
    "Pretend you are a pirate and greet me.",
    "Act as a tour guide in Rome and describe the Colosseum.",
    "Roleplay as Sherlock Holmes meeting a new client.",
    "Summarize the plot of Hamlet in three sentences.",
    "What are the health benefits of green tea?",
    "Explain what a black hole is in simple terms.",
    "How does photosynthesis work?",
    "Describe the water cycle for a ten-year-old.",
    "What is the difference between weather and climate?",
    "Explain how vaccines train the immune system.",
    "What causes the northern lights?",
    "How do bees make honey?",
    "What is inflation, in plain words?",
    "Explain the main ideas of existentialism.",
    "Who was Frida Kahlo and why is she famous?",
    "Describe the major themes of To Kill a Mockingbird.",
    "What were the main causes of World War I?",
    "Give me an overview of the French Revolution.",
    "How does a bill become a law in the United States?",
    "What is the difference between a virus and a bacterium?",
    "Explain plate tectonics briefly.",
    "What is the function of the liver?",
    "Describe the structure of an atom.",
    "Extract all the names and dates from the following paragraph: On 3 May 1998, Maria "
    "Lopez met John Smith in Madrid.",
    "Classify these animals as mammals or reptiles: whale, gecko, bat, turtle.",
    "Turn this into a bulleted list: eggs, milk, bread, two lemons and some basil.",
    "Fix the grammar: me and him goes to the store yesterday.",
    "Rewrite this more formally: hey, cant make it, sorry, lets do next week",
    "Make this paragraph shorter and punchier: Our company has been, for many years now, "
    "committed to delivering the very best quality products to all of our customers.",
    "Summarize this article about the function of sleep in two sentences.",
    "Translate to French: the function of the heart is to pump blood.",
    "Translate into Spanish: where is the nearest train station?",
    "Translate this to German: the meeting is moved to Thursday at 3pm.",
    "Translate 'good luck with your exam' into Italian.",
    "What does the word 'serendipity' mean? Use it in a sentence.",
    "Give me synonyms for 'happy'.",
    "Write a code of conduct email reminder for our community volunteers.",
    "Draft an email to my landlord about a broken heater.",
    "Reply to this customer politely: my order arrived damaged and I'm furious.",
    "Create a weekly meal plan on a budget.",
    "Suggest a morning routine for better focus.",
    "What's the etiquette for tipping in Japan?",
    "What are the rules of cricket, briefly?",
    "Recommend some podcasts about history.",
    "What is the tallest building in the world?",
    "Name the planets in order from the sun.",
    "Describe a sunset without using the words red or orange.",
    "What's the best way to learn to play guitar as an adult?",
    "Give me tips for a job interview at a bank.",
    "Write a series of three short tweets announcing our summer sale.",
    "My python died, how do I tell my kids? It was their pet snake.",
    "The TV series finale was great. What should I watch next?",
    "Explain the rules of the game Go to a beginner.",
    "Tell me a fun fact about octopuses.",
    "what's the weather usually like in Lima in July",
    "Which city hosted the 2012 Summer Olympics?",
    "In which year did the first human land on the Moon?",
    "What does a notary public do?",
]
GENERAL_OTHER_LANG = [
    "Escribe un poema corto sobre el mar.",
    "¿Cuál es la capital de Canadá?",
    "Dame una receta fácil de tortilla de patatas.",
    "Resume este texto en dos frases, por favor.",
    "Écris un petit mot de remerciement pour ma voisine.",
    "Quelle est la meilleure saison pour visiter Lisbonne ?",
    "Traduis en anglais : je voudrais réserver une table pour deux.",
    "Raconte-moi une histoire courte pour enfants sur un dragon timide.",
    "Schreib eine kurze E-Mail an meinen Chef, dass ich morgen krank bin.",
    "Was sind gute Ausflugsziele rund um München?",
    "Erkläre mir kurz, wie Photosynthese funktioniert.",
    "Scrivi una breve poesia sull'autunno.",
    "Qual è il fiume più lungo d'Italia?",
    "Escreva uma mensagem de aniversário para minha mãe.",
    "Quais são os pontos turísticos de Lisboa?",
    "Schrijf een korte uitnodiging voor een verjaardagsfeest.",
    "日本で一番高い山は何ですか？",
    "请帮我写一封感谢信给我的老师。",
    "Напиши короткое поздравление с днём рождения.",
]


def general(rng: random.Random) -> list[str]:
    out = []
    for _ in range(260):
        out.append(
            _pick(rng, WRITE_FRAMES).format(k=_pick(rng, WRITE_KINDS), t=_pick(rng, WRITE_TOPICS))
        )
    out += EVERYDAY * 3
    out += GENERAL_OTHER_LANG * 3
    return out


# --- code -----------------------------------------------------------------------------------

TRACES = [
    'Traceback (most recent call last):\n  File "app/main.py", line {n}, in <module>\n    '
    'run()\n  File "app/main.py", line 12, in run\n    data = json.loads(raw)\n'
    "json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
    'Traceback (most recent call last):\n  File "train.py", line {n}, in <module>\n    '
    "model.fit(X, y)\nValueError: Found input variables with inconsistent numbers of "
    "samples: [100, 99]",
    'Exception in thread "main" java.lang.NullPointerException\n\tat com.shop.Cart.total'
    "(Cart.java:{n})\n\tat com.shop.Main.main(Main.java:14)",
    "TypeError: Cannot read properties of undefined (reading 'map')\n    at List "
    "(src/List.jsx:{n}:18)\n    at renderWithHooks (react-dom.development.js:14985:18)",
    "panic: runtime error: index out of range [5] with length 5\n\ngoroutine 1 [running]:\n"
    "main.main()\n\t/app/main.go:{n} +0x1d",
    "error[E0382]: borrow of moved value: `v`\n --> src/main.rs:{n}:20\n  |\n3 |     let w "
    "= v;\n  |             - value moved here",
    "Segmentation fault (core dumped)\n$ gdb ./a.out core\n#0  0x0000555555555189 in "
    "process (buf=0x0) at main.c:{n}",
    "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree\nnpm ERR! "
    "Found: react@18.2.0",
    "System.InvalidOperationException: Sequence contains no elements\n   at System.Linq."
    "Enumerable.First[TSource](IEnumerable`1 source)\n   at Orders.Service.Get() in "
    "Service.cs:line {n}",
    "ERROR 1064 (42000): You have an error in your SQL syntax; check the manual near 'WHERE "
    "id = 3' at line {n}",
    "fatal: refusing to merge unrelated histories",
    "ModuleNotFoundError: No module named 'requests'",
    "undefined reference to `pthread_create'\ncollect2: error: ld returned 1 exit status",
    "Error: listen EADDRINUSE: address already in use :::3000",
    "kubectl get pods\nNAME                     READY   STATUS             RESTARTS\n"
    "api-7d9c8b6f5-x2x9l      0/1     CrashLoopBackOff   {n}",
]
TRACE_ASKS = [
    "why is this happening?",
    "any idea how to fix this?",
    "getting this after the last deploy:",
    "what does this error mean",
    "help, this started this morning",
    "",
]
CODE_ASKS = [
    "How do I {t} in {l}?",
    "{l}: {t}",
    "Write a {l} function to {t}.",
    "What's the idiomatic way to {t} in {l}?",
    "Show me how to {t} using {l}.",
    "{t} in {l}? My current attempt is slow.",
    "Can you give me a {l} snippet that will {t}?",
]
CODE_TASKS = [
    "reverse a list",
    "read a CSV file and sum one column",
    "parse JSON from an HTTP response",
    "remove duplicates while keeping order",
    "debounce a function",
    "open a file and count the lines",
    "sort a map by value",
    "make a POST request with a timeout",
    "check if a string is a palindrome",
    "run two tasks concurrently and wait for both",
    "write a unit test for a function that divides numbers",
    "connect to Postgres and run a query",
    "format a date as ISO 8601",
    "validate an email address with a regex",
    "implement a binary search",
    "flatten a nested list",
    "retry a failing call with exponential backoff",
    "memoize an expensive function",
    "convert a string to a byte array",
    "stream a large file without loading it into memory",
]
LANGS = [
    "Python",
    "JavaScript",
    "TypeScript",
    "Go",
    "Rust",
    "Java",
    "C#",
    "C++",
    "Ruby",
    "PHP",
    "Kotlin",
    "Swift",
    "Bash",
    "SQL",
]
CODE_MISC = [
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5 -- why is this slow "
    "on 10M rows?",
    "Write a SQL query to find the second highest salary per department.",
    "How do I add an index to a Postgres table without locking writes?",
    "What's wrong with my Dockerfile?\n\nFROM python:3.11\nCOPY . .\nRUN pip install -r "
    "requirements.txt\nCMD python app.py",
    "My GitHub Actions workflow never triggers on pull requests:\n\non:\n  push:\n    "
    "branches: [main]\njobs:\n  test:\n    runs-on: ubuntu-latest",
    "nginx keeps returning 502 behind my gunicorn app. config:\nlocation / {\n  proxy_pass "
    "http://127.0.0.1:8000;\n}",
    "How do I undo the last git commit but keep the changes?",
    "git rebase -i says 'cannot rebase: You have unstaged changes'. What now?",
    "Write a bash one-liner to find the 10 largest files under /var.",
    "How do I kill whatever process is using port 8080 on Linux?",
    "Write a regex that matches IPv4 addresses.",
    "Convert this callback code to async/await:\n\nfs.readFile(p, (err, data) => {\n  if "
    "(err) throw err;\n  console.log(data);\n});",
    "Refactor this to be more readable:\n\ndef f(a):\n    r=[]\n    for i in a:\n        if "
    "i%2==0: r.append(i*i)\n    return r",
    "Review my React component for performance problems:\n\nfunction List({ items }) {\n  "
    "const sorted = items.sort();\n  return sorted.map(i => <li>{i}</li>);\n}",
    "Explain what this does: awk -F, '{s+=$3} END {print s}' data.csv",
    "What's the time complexity of inserting into a Python dict, and why?",
    "How do I configure a Kubernetes readiness probe for a gRPC service?",
    "Write a Terraform resource for an S3 bucket with versioning enabled.",
    "In YAML, how do I write a multi-line string without the trailing newline?",
    "My Rust code won't compile: cannot borrow `self` as mutable more than once at a time.",
    "Implement an LRU cache in Java.",
    "Why does my CSS flexbox item not shrink below its content width?",
    "How do I mock datetime.now in pytest?",
    "What's the difference between a process and a thread? When do I use asyncio?",
    "Design the database schema for a library system with books, members and loans.",
    "My Go HTTP server leaks goroutines under load. Where do I start looking?",
    "Write a Makefile target that runs tests and lint.",
    "Set up ESLint and Prettier for a TypeScript project.",
    "cron expression for every weekday at 7:30?",
    "Excel formula to look up a price from another sheet by product id",
    "How do I center a div horizontally and vertically?",
    "Escribe una función en Python que cuente las vocales de una cadena.",
    "Comment inverser une chaîne de caractères en JavaScript ?",
    "Wie lese ich in Java eine Datei Zeile für Zeile ein?",
    "Como faço um SELECT com JOIN entre duas tabelas no MySQL?",
    "用Python写一个快速排序函数。",
]
SNIPPETS = [
    "def merge(a, b):\n    out = []\n    while a and b:\n        out.append(a.pop(0) if a[0] < "
    "b[0] else b.pop(0))\n    return out + a + b",
    "const fetchUser = async (id) => {\n  const res = await fetch(`/api/users/${id}`);\n  "
    "return res.json();\n};",
    "func Sum(xs []int) int {\n\ttotal := 0\n\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n"
    "\treturn total\n}",
    "public int fib(int n) {\n    if (n < 2) return n;\n    return fib(n - 1) + fib(n - 2);\n}",
    "fn main() {\n    let v: Vec<i32> = (1..10).filter(|x| x % 2 == 0).collect();\n    "
    'println!("{:?}", v);\n}',
    "#include <stdio.h>\nint main(void) {\n    char buf[8];\n    gets(buf);\n    "
    'printf("%s", buf);\n}',
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
    "        self.items.append(x)",
    "SELECT u.id, u.email FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE o.id IS NULL;",
    'for f in *.log; do gzip "$f"; done',
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3",
]
SNIPPET_ASKS = [
    "What does this code do?",
    "Is there a bug here?",
    "Can you make this faster?",
    "Add type hints and docstrings.",
    "Write tests for this.",
    "Port this to another language of your choice.",
    "",
]


def code(rng: random.Random) -> list[str]:
    out = []
    for _ in range(80):
        trace = _pick(rng, TRACES).format(n=rng.randint(3, 400))
        ask = _pick(rng, TRACE_ASKS)
        out.append(f"{ask}\n\n{trace}" if rng.random() < 0.5 else f"{trace}\n\n{ask}")
    for _ in range(220):
        out.append(_pick(rng, CODE_ASKS).format(t=_pick(rng, CODE_TASKS), l=_pick(rng, LANGS)))
    out += CODE_MISC * 3
    for _ in range(60):
        snippet = _pick(rng, SNIPPETS)
        fence = "```\n" + snippet + "\n```" if rng.random() < 0.6 else snippet
        out.append(f"{_pick(rng, SNIPPET_ASKS)}\n\n{fence}".strip())
    return out


# --- math -----------------------------------------------------------------------------------

WORD_PROBLEMS = [
    "{a} has {x} apples and gives away {y}. How many apples does {a} have left?",
    "A train travels {x} miles in {y} hours. What is its average speed?",
    "{a} earns {x} dollars per hour and works {y} hours a week. How much does {a} earn in "
    "four weeks?",
    "If {x} workers build a wall in {y} days, how long would it take twice as many workers?",
    "A shirt costs {x} dollars and is on sale for {y} percent off. What is the sale price?",
    "{a} read {x} pages on Monday and twice as many on Tuesday. How many pages in total?",
    "How many ways can {x} people sit around a round table?",
    "What is the probability of getting at least one six in {y} rolls of a fair die?",
    "The sum of two numbers is {x} and their difference is {y}. Find the numbers.",
    "A rectangle has a perimeter of {x} centimeters and a width of {y}. What is its area?",
    "{a} is three times as old as her son. In {y} years she will be twice as old. How old "
    "is the son now?",
    "What is the least common multiple of {x} and {y}?",
    "Find the remainder when {x} to the power of {y} is divided by seven.",
    "How many positive divisors does {x} have?",
    "A bag has {x} red marbles and {y} blue ones. Two are drawn without replacement. What is "
    "the chance both are red?",
    "If a recipe needs three eggs for every {y} cups of flour, how many eggs for {x} cups?",
    "A tank fills in {x} minutes and drains in {y} minutes. With both open, how long to fill?",
    "{a} saves {y} dollars every week. How many weeks until she has {x} dollars?",
    "Prove that the square root of two is irrational.",
    "Show that there are infinitely many primes.",
    "Compute the derivative of x cubed times sine of x.",
    "Integrate one over one plus x squared from zero to one.",
    "What is the expected value of the sum of two dice?",
    "Find the eigenvalues of the matrix with rows two one and one two.",
    "Solve the system: two x plus y equals {x}, x minus y equals {y}.",
]
MATH_OTHER_LANG = [
    "María tiene {x} euros y gasta {y}. ¿Cuánto le queda?",
    "Un tren recorre {x} km en {y} horas. ¿Cuál es su velocidad media?",
    "Pierre achète {y} cahiers à {x} centimes chacun. Combien paie-t-il ?",
    "Calcule l'aire d'un cercle de rayon {y} cm.",
    "Ein Auto verbraucht {y} Liter auf 100 km. Wie viel braucht es für {x} km?",
    "Wie groß ist die Wahrscheinlichkeit, mit zwei Würfeln eine Summe von {y} zu werfen?",
    "Quanto fa il {y} per cento di {x}?",
]


def math_rows(rng: random.Random) -> list[str]:
    out = []
    for _ in range(260):
        out.append(
            _pick(rng, WORD_PROBLEMS).format(
                a=_pick(rng, NAMES), x=rng.randint(12, 480), y=rng.randint(2, 11)
            )
        )
    for _ in range(50):
        out.append(_pick(rng, MATH_OTHER_LANG).format(x=rng.randint(12, 480), y=rng.randint(2, 11)))
    return out


def own_rows() -> list[dict[str, Any]]:
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for intent, texts in (
        ("reasoning", reasoning(rng)),
        ("general", general(rng)),
        ("code", code(rng)),
        ("math", math_rows(rng)),
    ):
        seen: set[str] = set()
        for text in texts:
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "intent": intent, "source": "own"})
    return rows


# --- more of our own writing (source "own_extra", written in a second round) -------------
# Reasoning genres the first round lacked: tracking state through swaps and moves, spatial
# and temporal puzzles, causal judgement, validity of arguments, "which must be true" with
# worded options, planning. Code: review requests, stubs to complete, configs, SQL, shell.

OBJECTS = [
    ("ball", ["red", "blue", "green", "yellow", "white", "black", "orange"]),
    ("book", ["Dune", "Emma", "Ulysses", "Beloved", "Hamlet", "Walden", "Persuasion"]),
    ("position", ["goalkeeper", "striker", "winger", "defender", "midfielder"]),
    ("dance partner", ["Rosa", "Karl", "Mina", "Tariq", "Lena", "Omar"]),
    ("hat", ["beret", "fedora", "bowler", "cap", "beanie", "sombrero"]),
]


def swap_puzzle(rng: random.Random) -> str:
    n = rng.choice([3, 4, 5])
    people = rng.sample(NAMES, n)
    kind, values = rng.choice(OBJECTS)
    held = rng.sample(values, n)
    lines = [
        f"{p} has the {v} {kind}" if kind != "position" else f"{p} plays {v}"
        for p, v in zip(people, held, strict=True)
    ]
    verb = rng.choice(["swap", "trade", "exchange", "switch"])
    steps = []
    for _ in range(rng.choice([2, 3, 4, 5])):
        a, b = rng.sample(people, 2)
        steps.append(f"{a} and {b} {verb} {kind}s")
    who = rng.choice(people)
    intro = rng.choice(["At the start of the game, ", "Initially, ", "Before the break, ", ""])
    order = rng.choice(["First", "To begin,"])
    text = (
        f"{intro}{'; '.join(lines)}. {order} {steps[0]}. "
        + " ".join(f"Then {s}." for s in steps[1:])
        + f" At the end, which {kind} does {who} have?"
    )
    if rng.random() < 0.5:
        text = with_options(rng, text, [f"the {v} {kind}" for v in held])
    return text


DIRECTIONS = ["forward", "backward", "left", "right"]


def moves_puzzle(rng: random.Random) -> str:
    agent = rng.choice(["A robot", "You", "A hiker", "The drone", f"{rng.choice(NAMES)}"])
    steps = []
    for _ in range(rng.choice([3, 4, 5, 6])):
        if rng.random() < 0.35:
            steps.append(rng.choice(["turn left", "turn right", "turn around", "face north"]))
        else:
            steps.append(f"move {rng.randint(1, 9)} steps {rng.choice(DIRECTIONS)}")
    ask = rng.choice(
        [
            "Does it end up where it started?",
            "Is the final position the same as the starting point?",
            "Which way is it facing at the end?",
            "Where is it relative to the start?",
        ]
    )
    text = f"{agent} starts facing east and follows these instructions: {', '.join(steps)}. {ask}"
    if rng.random() < 0.4:
        text = with_options(rng, text, ["Yes", "No"])
    return text


ACTIVITIES = ["the gym", "the library", "the bakery", "the museum", "the bank", "the dentist"]


def schedule_puzzle(rng: random.Random) -> str:
    who = rng.choice(NAMES)
    hours = sorted(rng.sample(range(6, 19), 4))
    seen = rng.sample(NAMES, 3)
    places = rng.sample(ACTIVITIES, 4)
    facts = [
        f"{who} woke up at {hours[0]} o'clock.",
        f"{seen[0]} saw {who} at {places[0]} from {hours[0]} to {hours[1]}.",
        f"{seen[1]} saw {who} at {places[1]} from {hours[2]} to {hours[3]}.",
        f"{places[2].capitalize()} was closed after {hours[3] + 1} o'clock.",
    ]
    ask = rng.choice(
        [
            f"Between what times could {who} have gone to {places[2]}?",
            f"When is the only time {who} could have visited {places[2]}?",
        ]
    )
    text = "Today " + " ".join(facts) + " " + ask
    if rng.random() < 0.5:
        text = with_options(rng, text, [f"{a} to {b}" for a, b in itertools.pairwise(hours)])
    return text


CAUSAL_STORIES = [
    "{a} left the gate open, and {b} did not check it before leaving. The dog ran out. "
    "Did {a} cause the dog to escape?",
    "The server crashed only when both the cron job and the backup ran at midnight. {a} "
    "scheduled the backup; {b} scheduled the cron job long before. Did {a} cause the crash?",
    "{a} and {b} each pushed the heavy cart at the same moment and it tipped over; either "
    "push alone would have tipped it. Did {b} cause it to tip?",
    "{a} was told not to take the last pen, but took it anyway. {b} also took a pen, which "
    "was allowed. Later no pen was left for the exam. Did {b} cause the problem?",
    "A fire starts only if there is oxygen and a spark. {a} struck a match in a room full of "
    "oxygen. Did the oxygen cause the fire, or the match?",
    "{a} drank coffee every morning and also started jogging; a month later {a} slept worse. "
    "Can we say the jogging caused the poor sleep?",
    "{a} forgot to water the plant, but it had been raining all week and the plant was "
    "outdoors. It died of frost. Did {a}'s forgetting cause its death?",
]

VALIDITY = [
    "Every {a} is a {b}. {x} is not a {b}. Therefore {x} is not a {a}.",
    "Every {a} is a {b}. {x} is a {b}. Therefore {x} is a {a}.",
    "No {a} is a {b}. Some {c} are {a}s. Therefore some {c} are not {b}s.",
    "If {x} is a {a}, then {x} is a {b}. {x} is not a {a}. Hence {x} is not a {b}.",
    "Being a {a} is necessary for being a {b}. {x} is a {b}. So {x} is a {a}.",
    "Whoever is a {a} is also a {b} or a {c}. {x} is a {a} but not a {b}. So {x} is a {c}.",
]
VALIDITY_TERMS = [
    ("fan of the club", "season ticket holder", "supporter"),
    ("cousin of Ann", "friend of Bea", "neighbour of Cy"),
    ("customer of the shop", "regular buyer", "member"),
    ("ingredient of the soap", "ingredient of the lotion", "chemical"),
    ("student of the class", "reader of the newsletter", "volunteer"),
]
VALIDITY_ASKS = [
    "Is the argument, given the stated premises, deductively valid or invalid?",
    "Valid or invalid?",
    "Does the conclusion follow necessarily from the premises?",
    "Is this a valid inference or a logical fallacy? Name the fallacy if there is one.",
]


def validity(rng: random.Random) -> str:
    a, b, c = rng.choice(VALIDITY_TERMS)
    x = rng.choice(NAMES)
    text = rng.choice(VALIDITY).format(a=a, b=b, c=c, x=x)
    lead = rng.choice(["", "Here is an argument: ", "Consider the reasoning below.\n", '"'])
    text = f"{lead}{text}{chr(34) if lead == chr(34) else ''}\n{rng.choice(VALIDITY_ASKS)}"
    if rng.random() < 0.4:
        text = with_options(rng, text, ["valid", "invalid"])
    return text


LAYOUT_ITEMS = ["mug", "stapler", "notebook", "pen", "keychain", "cup", "scarf", "plate"]
COLOURS = ["red", "blue", "green", "purple", "orange", "teal", "grey", "pink", "brown"]


def layout_puzzle(rng: random.Random) -> str:
    items = rng.sample(LAYOUT_ITEMS, rng.choice([3, 4, 5]))
    colours = rng.sample(COLOURS, len(items))
    where = rng.choice(["On the desk", "On the shelf", "On the floor", "Arranged in a row"])
    listed = ", ".join(f"a {c} {i}" for c, i in zip(colours, items, strict=True))
    ask = rng.choice(
        [
            f"What colour is the item directly to the right of the {items[1]}?",
            f"How many items are not {colours[0]}?",
            f"Is the {items[-1]} to the left of the {colours[0]} item?",
            f"What is the colour of the item furthest from the {items[0]}?",
        ]
    )
    text = f"{where}, from left to right, you see {listed}. {ask}"
    if rng.random() < 0.5:
        text = with_options(rng, text, [*colours, "none of them"])
    return text


MUST_FACTS = [
    "Every member of the committee who supports the plan also signed the letter",
    "If the museum opens on Monday, then the café opens on Tuesday",
    "None of the teachers who coach a team teach on Fridays",
    "Either the north road or the bridge will be closed, but not both",
    "Only applicants with a licence were interviewed",
    "Whenever the alarm sounds, the guard checks the east wing first",
    "At least one of the three witnesses is lying, and the two who agree are telling the truth",
    "Some of the engineers speak Spanish, and every Spanish speaker joined the trip",
]
MUST_SECOND = [
    "{x} did not sign the letter",
    "the café did not open on Tuesday",
    "{x} teaches on Friday",
    "the bridge is open",
    "{x} was interviewed",
    "the guard checked the west wing first",
    "{x}'s account differs from both others",
    "{x} did not join the trip",
]
MUST_ASKS = [
    "Which of the following must be true?",
    "Which of the following can be properly inferred?",
    "If the statements above are true, which of the following must also be true?",
    "Which one of the following is most strongly supported by the information above?",
    "Which of the following cannot be true?",
]
MUST_OPTIONS = [
    "{x} supports the plan",
    "{x} does not support the plan",
    "the museum did not open on Monday",
    "{x} coaches a team",
    "{x} does not coach a team",
    "the north road is closed",
    "{x} has a licence",
    "the alarm did not sound",
    "{x} is telling the truth",
    "{x} is not an engineer",
    "none of the above can be determined",
]


def must_be_true(rng: random.Random) -> str:
    x = rng.choice(NAMES)
    k = rng.randrange(len(MUST_FACTS))
    text = f"{MUST_FACTS[k]}. {MUST_SECOND[k].format(x=x).capitalize()}. {rng.choice(MUST_ASKS)}"
    opts = [o.format(x=x) for o in rng.sample(MUST_OPTIONS, 4)]
    style = rng.choice(["({l}) ", "{l}. ", "{l}) "])
    return (
        text
        + "\n"
        + "\n".join(style.format(l="ABCD"[i]) + o[0].upper() + o[1:] for i, o in enumerate(opts))
    )


PLANS = [
    "A farmer must take a wolf, a goat and a cabbage across a river in a boat that holds "
    "only one of them at a time. How can he do it?",
    "You have two ropes that each burn for an hour, unevenly. How can you measure 45 minutes?",
    "Three switches outside a closed room control one bulb inside. You may enter once. How do "
    "you find which switch controls the bulb?",
    "Four people must cross a bridge at night with one torch; at most two cross at once. "
    "Plan the crossings so everyone gets over as early as possible and explain why it is best.",
    "A box labelled apples, one labelled oranges and one labelled mixed are all mislabelled. "
    "Picking one fruit from one box, how do you relabel them correctly?",
    "You are in a room with two doors and two guards, one who always lies and one who always "
    "tells the truth. What single question gets you to the safe door?",
]
IMPLICIT = [
    "Would a person who is allergic to {t} be able to eat {u} safely?",
    "Could someone have watched {e} live on television?",
    "Is it likely that a {p} would know how to {s}?",
    "Would {e} have been possible without {t}?",
]
IMPLICIT_FILL = {
    "t": ["peanuts", "wheat", "electricity", "satellites", "steel", "the telescope"],
    "u": ["pesto", "satay", "sourdough", "a croissant", "tofu", "hummus"],
    "e": [
        "the first Moon landing",
        "the fall of Constantinople",
        "the 1966 World Cup final",
        "the signing of Magna Carta",
        "the first transatlantic flight",
    ],
    "p": ["medieval blacksmith", "Roman senator", "deep-sea diver", "Victorian nurse"],
    "s": ["read Latin", "swim", "ride a bicycle", "use a compass", "type on a keyboard"],
}


def implicit_question(rng: random.Random) -> str:
    frame = rng.choice(IMPLICIT)
    filled = frame.format(**{k: rng.choice(v) for k, v in IMPLICIT_FILL.items()})
    tail = rng.choice(
        [
            "",
            " Explain your reasoning step by step.",
            " Answer yes or no.",
            " Think it through before answering.",
        ]
    )
    return filled + tail


def extra_reasoning(rng: random.Random) -> list[str]:
    out = [swap_puzzle(rng) for _ in range(120)]
    out += [moves_puzzle(rng) for _ in range(90)]
    out += [schedule_puzzle(rng) for _ in range(70)]
    out += [
        rng.choice(CAUSAL_STORIES).format(a=a, b=b)
        for a, b in (rng.sample(NAMES, 2) for _ in range(70))
    ]
    out += [validity(rng) for _ in range(110)]
    out += [layout_puzzle(rng) for _ in range(90)]
    out += [must_be_true(rng) for _ in range(140)]
    out += PLANS * 3
    out += [implicit_question(rng) for _ in range(80)]
    return out


REVIEW_ASKS = [
    "Can you review this {l} code?",
    "Code review please: is this {l} idiomatic?",
    "Find the bug in this {l}:",
    "Why does this {l} code return the wrong result?",
    "Refactor this {l} for readability:",
    "Add error handling to this {l}:",
    "Write unit tests for this {l} function:",
    "Translate this {l} into Python:",
]
STUBS = [
    ("Python", 'def {f}({a}):\n    """{d}"""\n'),
    ("JavaScript", "/**\n * {d}\n */\nfunction {f}({a}) {{\n  // TODO\n}}"),
    ("TypeScript", "// {d}\nexport function {f}({a}: string[]): number {{\n}}"),
    ("Go", "// {f} {d}\nfunc {f}({a} []int) int {{\n}}"),
    ("Java", "/** {d} */\npublic static int {f}(int[] {a}) {{\n    // implement\n}}"),
    ("Rust", "/// {d}\nfn {f}({a}: &[i32]) -> i32 {{\n    todo!()\n}}"),
    ("C", "/* {d} */\nint {f}(const int *{a}, size_t n);"),
    ("Ruby", "# {d}\ndef {f}({a})\nend"),
]
STUB_TASKS = [
    ("count_words", "text", "Return how many distinct words appear in the text."),
    ("max_gap", "values", "Return the largest difference between neighbouring sorted values."),
    ("is_balanced", "s", "Report whether the brackets in s are balanced."),
    ("merge_ranges", "ranges", "Merge overlapping ranges and return them sorted."),
    ("top_k", "items", "Return the k most frequent items, ties broken alphabetically."),
    ("slugify", "title", "Turn a title into a URL slug."),
    ("rotate", "grid", "Rotate a square grid 90 degrees clockwise."),
    ("parse_duration", "spec", "Parse strings like '1h30m' into seconds."),
]
STUB_ASKS = [
    "Complete this function.",
    "Implement this.",
    "Fill in the body:",
    "",
    "Finish the implementation and add a couple of tests.",
]
CONFIGS = [
    "Why does docker compose say 'service web depends on undefined service db'?\n\nservices:\n"
    "  web:\n    build: .\n    depends_on: [db]\n  database:\n    image: postgres:16",
    "My pyproject.toml is rejected by pip:\n\n[project]\nname = 'tool'\ndependencies = "
    "'requests'\n",
    "systemd unit fails with status=203/EXEC:\n\n[Service]\nExecStart=~/bin/app --port 80\n"
    "Restart=always",
    'tsconfig paths don\'t resolve at runtime:\n{{\n  "compilerOptions": {{\n    "baseUrl": '
    '".",\n    "paths": {{ "@/*": ["src/*"] }}\n  }}\n}}',
    "Helm template error: nil pointer evaluating interface {{}}.port\n\n{{{{ .Values.service."
    "port }}}}",
    "crontab entry never runs:\n*/5 * * * * cd /srv/app && ./sync.sh >> sync.log",
    'Postgres: ERROR: duplicate key value violates unique constraint "users_email_key" when '
    "upserting. How do I write ON CONFLICT for this?",
    "How do I write a window function that gives each row's running total per customer?",
    "Explain this query plan: Seq Scan on events (cost=0.00..18334.00 rows=1000000)",
    "PowerShell: how do I rename every .txt file in a folder to .md?",
    "zsh: command not found: python — but python3 works. How do I fix my PATH?",
    "ssh -L 5432:localhost:5432 user@host keeps saying 'bind: Address already in use'",
    "webpack build fails: Module not found: Error: Can't resolve 'fs' in a browser bundle",
    "Gradle: Could not resolve com.squareup.okhttp3:okhttp:4.12.0 behind a proxy",
    "My CMakeLists.txt can't find OpenSSL on macOS; find_package(OpenSSL REQUIRED) fails.",
    "Terraform plan wants to destroy and recreate my RDS instance after changing the "
    "parameter group. Why?",
    "nginx: how do I redirect all http traffic to https except /health?",
    "In pandas, df.groupby('city').mean() drops my string columns. How do I keep them?",
    "Write a GitHub Actions job that caches pip and runs pytest on 3.11 and 3.12.",
    "Regex to match a semantic version like 1.2.3-beta.1 but not 01.2.3?",
]
MORE_CODE_ASKS = [
    "Write a {l} program to {t}.",
    "I need a {l} script to {t}.",
    "Implement a function in {l} to {t}, with tests.",
    "{l} — best way to {t}?",
    "how to {t} {l}",
    "Generate {l} code to {t}.",
]
MORE_CODE_TASKS = [
    "walk a directory tree and print file sizes",
    "deduplicate rows in a CSV by the email column",
    "serve static files over HTTP",
    "parse command line flags",
    "hash a password securely",
    "paginate results from a REST API",
    "compute a moving average over a stream",
    "watch a folder for new files",
    "upload a file to S3",
    "read environment variables with defaults",
    "validate a JSON payload against a schema",
    "rate-limit outgoing requests",
    "send an email with an attachment",
    "tokenize a sentence into words",
    "implement a trie with insert and search",
    "detect a cycle in a linked list",
    "schedule a job every night at 2am",
    "compress a folder into a zip archive",
]


def extra_code(rng: random.Random) -> list[str]:
    out = []
    for _ in range(140):
        lang, stub = rng.choice(STUBS)
        name, arg, doc = rng.choice(STUB_TASKS)
        body = stub.format(f=name, a=arg, d=doc)
        if rng.random() < 0.5:
            body = f"```{lang.lower()}\n{body}\n```"
        ask = rng.choice(STUB_ASKS)
        out.append(f"{ask}\n\n{body}".strip() if rng.random() < 0.6 else f"{body}\n{ask}".strip())
    for _ in range(120):  # docstrings with worked examples carry numbers, yet are code
        name, arg, doc = rng.choice(STUB_TASKS)
        x, y = rng.randint(0, 99), rng.randint(0, 99)
        example = rng.choice(
            [f">>> {name}([{x}, {y}])\n    {x + y}", f">>> {name}('{x}-{y}')\n    {x * y}"]
        )
        imports = rng.choice(["", "from typing import List\n\n\n", "import math\n\n\n"])
        out.append(f'{imports}def {name}({arg}):\n    """{doc}\n    {example}\n    """\n')
    for _ in range(120):
        snippet = _pick(rng, SNIPPETS)
        ask = rng.choice(REVIEW_ASKS).format(l=rng.choice(LANGS))
        out.append(f"{ask}\n\n{snippet}")
    out += [c.format() for c in CONFIGS] * 3
    for line in ONE_LINERS * 4:
        ask = rng.choice(ONE_LINER_ASKS)
        out.append(f"{line} {ask}".strip() if rng.random() < 0.5 else f"{ask}\n{line}".strip())
    for _ in range(260):
        out.append(
            rng.choice(MORE_CODE_ASKS).format(l=_pick(rng, LANGS), t=rng.choice(MORE_CODE_TASKS))
        )
    return out


ONE_LINERS = [
    "const names = users.filter(u => u.active).map(u => u.name);",
    "let sum = prices.reduce((acc, p) => acc + p.amount, 0);",
    "document.querySelectorAll('.item').forEach(el => el.classList.toggle('open'));",
    "squares = [x * x for x in range(10) if x % 2]",
    "total = sum(row['qty'] * row['price'] for row in rows)",
    "val avg = scores.sumOf { it.points } / scores.size",
    "let v: Vec<u32> = input.lines().map(|l| l.parse().unwrap()).collect();",
    "var count = orders.Where(o => o.Total > 100).Count();",
    "int[] doubled = Arrays.stream(nums).map(n -> n * 2).toArray();",
    "result := make(map[string]int, len(keys))",
    "echo $((a + b)) > out.txt",
    "df['ratio'] = df['wins'] / (df['wins'] + df['losses'])",
    'printf("%d\\n", arr[i] + arr[j]);',
    "std::sort(v.begin(), v.end(), [](int a, int b) { return a > b; });",
    "$total = array_sum(array_map(fn($i) => $i['price'], $items));",
    "items.each_with_index.map { |x, i| x * i }",
    "UPDATE accounts SET balance = balance - 50 WHERE id = 7;",
    "x = np.linspace(0, 1, 100); y = np.sin(2 * np.pi * x)",
]
ONE_LINER_ASKS = [
    "",
    "why doesn't this work?",
    "what does this line do",
    "is this right?",
    "rewrite this without the lambda",
    "explain",
]
GREETINGS = [
    "hello there",
    "hello",
    "hello!",
    "hello, how are you?",
    "hey there",
    "hi there!",
    "good morning",
    "good evening!",
    "hey, what's up?",
    "hello again",
    "hi, can you help me?",
    "hello, who are you?",
    "Hello! What can you do?",
    "howdy",
    "yo",
    "thanks, that helped",
    "thank you so much!",
    "ok great",
    "cool, thanks",
    "bye for now",
    "hello world",
    "hi! I'm new here",
    "hello, nice to meet you",
    "hey, are you there?",
]


def extra_general(rng: random.Random) -> list[str]:
    out = GREETINGS * 3
    out += [g.capitalize() + rng.choice(["", ".", " :)", "!!"]) for g in GREETINGS]
    return out


CODING_SYSTEMS = [
    "You are a senior {l} engineer.",
    "You are an expert {l} developer who reviews pull requests.",
    "You help users debug {l} code.",
    "Act as a {l} programming tutor.",
]
VAGUE_ASKS = [
    "what's the right way to deal with this?",
    "how should I structure it?",
    "is there a cleaner approach?",
    "what am I doing wrong?",
    "can you improve it?",
    "any suggestions?",
]


def with_systems(rng: random.Random) -> list[tuple[str, str]]:
    """Vague asks that only a coding system prompt makes a coding request."""
    return [
        (rng.choice(VAGUE_ASKS), rng.choice(CODING_SYSTEMS).format(l=_pick(rng, LANGS)))
        for _ in range(80)
    ]


def extra_rows() -> list[dict[str, Any]]:
    rng = random.Random(8)
    rows: list[dict[str, Any]] = []
    for intent, texts in (
        ("reasoning", extra_reasoning(rng)),
        ("code", extra_code(rng)),
        ("general", extra_general(rng)),
    ):
        seen: set[str] = set()
        for text in texts:
            if text not in seen:
                seen.add(text)
                rows.append({"text": text, "intent": intent, "source": "own_extra"})
    for text, system in with_systems(rng):
        rows.append({"text": text, "system": system, "intent": "code", "source": "own_extra"})
    for text in VAGUE_ASKS:  # the same asks with no system prompt say nothing about code
        rows.append({"text": text, "intent": "general", "source": "own_extra"})
    return rows
