"""The pages for people: the landing page and search, a project's pages, login and the console."""
