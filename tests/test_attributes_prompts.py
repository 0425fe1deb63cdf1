"""Aspect tables and the prompt templates of paper 003 (Appendix C, Tables 9-10)."""

from __future__ import annotations

import pytest

from recbench.core.errors import ConfigError
from recbench.items.attributes import prompts
from recbench.items.attributes.aspects import builtin_tables, load_table, table_for_domain

# Table 9 of the paper, the movie item template with the first two aspects (one per line)
PAPER_ITEM_SYSTEM = (
    "You are a movie critic. You have been asked to review a movie. You should rate the movie "
    "on a scale of 1 to 10 (1 is the most negative and 10 is the most positive) on the "
    "following dimensions:\n"
    "story complexity: How intricate and multi-layered the storyline is (e.g., 1 for very "
    "simple, 10 for highly complex).\n"
    "dialogue complexity: The sophistication of the conversations and monologues (e.g., 1 for "
    "simple, 10 for highly sophisticated).\n"
    "Your response should be in the following format, where <rating> is a number between 1 "
    "and 10:\nstory complexity: <rating>\ndialogue complexity: <rating>\n"
    "Do NOT include any other information in your response.")
PAPER_USER_SYSTEM_START = (
    "You are a movie recommender. You will be given some previous movie reviews of a user. "
    "You have been asked to recommend a movie to the user. You should rate the movie which you "
    "think the user will like on a scale of 1 to 10 (1 is the least likely and 10 is the most "
    "likely) on the following dimensions:\n")


def test_three_tables_of_twelve_aspects_verbatim():
    tables = builtin_tables()
    assert sorted(tables) == ["clothing", "games", "movies"]
    assert all(len(t.aspects) == 12 for t in tables.values())
    movies = tables["movies"]
    assert movies.names[0] == "story complexity" and movies.names[-1] == "movie length (duration)"
    assert movies.aspects[7].description == ("Rate from realism to fantasy (e.g., 1 for highly "
                                             "realistic, 10 for pure fantasy).")
    games = tables["games"]
    assert games.names[8] == "gaming style and emotional resonance"
    assert tables["clothing"].aspects[11].description.startswith("Machine washable vs. dry clean")


def test_domain_picks_the_table():
    assert table_for_domain("movies").name == "movies"
    assert table_for_domain("games").name == "games"
    assert table_for_domain("video_games").name == "games"
    assert table_for_domain("fashion").name == "clothing"
    with pytest.raises(ConfigError, match="news"):
        table_for_domain("news")


def test_user_table_from_yaml(tmp_path):
    path = tmp_path / "books.yaml"
    path.write_text("noun: book\naspects:\n  - {name: pace, description: 'How fast (e.g., 1 for "
                    "slow, 10 for fast).'}\n")
    table = load_table(str(path))
    assert table.noun == "book" and table.names == ["pace"]
    assert prompts.item_system_prompt(table).startswith("You are a book critic.")
    bad = tmp_path / "bad.yaml"
    bad.write_text("noun: book\naspects:\n  - {name: pace}\n")
    with pytest.raises(ConfigError, match="aspects\\[0\\]"):
        load_table(str(bad))
    with pytest.raises(ConfigError, match="file not found"):
        load_table(str(tmp_path / "none.yaml"))
    with pytest.raises(ConfigError, match="movies"):
        load_table("tv")


def test_item_prompt_matches_table_9():
    table = load_table("movies").first(2)
    assert prompts.item_system_prompt(table) == PAPER_ITEM_SYSTEM
    row = {"item_id": 3, "item_key": "1", "text": "Toy Story (1995)",
           "genres": "Adventure|Animation", "empty": ""}
    item = prompts.item_prompt(row)
    assert item == "title: Toy Story (1995)\ngenres: Adventure|Animation"
    assert prompts.item_message(table, item) == \
        "Here is some information about a movie: title: Toy Story (1995)\ngenres: " \
        "Adventure|Animation"


def test_user_prompt_matches_table_10():
    table = load_table("movies")
    system = prompts.user_system_prompt(table)
    assert system.startswith(PAPER_USER_SYSTEM_START)
    assert system.endswith("movie length (duration): <rating>\nDo NOT include any other "
                           "information in your response.")
    msg = prompts.user_message(table, ["title: A\ngenres: Drama", "title: B"])
    assert msg == ("Here are some previous movie reviews of the user:\n"
                   "review 1: product: title: A genres: Drama\nreview 2: product: title: B")


def test_games_noun_and_article():
    table = load_table("games")
    assert prompts.item_system_prompt(table).startswith(
        "You are a game critic. You have been asked to review a game.")
    clothing = load_table("clothing")
    assert "recommend a clothing item to the user" in prompts.user_system_prompt(clothing)
