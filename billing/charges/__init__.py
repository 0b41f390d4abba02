"""The operators' view: pages of charges and debtors and one charge's detail
(browsing), the audited exports (export) and the Overview's figures (overview)."""
