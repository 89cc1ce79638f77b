"""What the pages share: the Streamlit side of Latent Lab (the engine never imports streamlit).

    navigation.py  the page list, written once (app.py's router and Home's tour read it)
    entry.py       a deep link on a fresh server runs app.py first
    resources.py   objects shared by every session (st.cache_resource): the job manager, loaded runs,
                   datasets, codes, the map jobs; the server's torch threads and UMAP warm-up
    sidebar.py     the dataset picker and the device
    urlstate.py    reading and writing the view's state in the URL (st.query_params)
    text.py        the pages' explanations (assets/pages/*.md) and number formatting
    runs.py        choosing a run for a page, and the "train one now" button when there is none
    forms.py       a new-run form generated from a model's settings
    run_panel.py   the runs gallery and one run's live panel (progress, snapshots, losses, buttons)
    images.py      showing 28×28 images crisply; error maps in colour
    widgets.py     small widget helpers (log-spaced slider options)
    charts/        plotly figures, one module per page that draws some (losses.py is shared)
    panels/        a page's panels when the page would be too long for one file (the GAN studio)
"""
