"""Result records (one JSON per finished run), the store, and leaderboard rendering."""
