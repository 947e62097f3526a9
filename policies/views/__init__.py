"""Pages of the policies app, one module per part: applications (teams, apps, keys), policies
(documents and their editor) and reviews (queue, review page, compliance requests)."""
