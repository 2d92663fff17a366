"""A site's own labelled radiographs: import (``rascore site import``), training on them
(``rascore train --site``) and validation against its readers (``rascore validate``)."""
