//! The group's blind-token epochs (`token_keys`, migration 2): one sealed row per epoch,
//! written once by whichever node makes it first (`crate::token_keys::shared`).

use ephemera_proto::DayNumber;

use super::{PostgresReportStore, day_of, sql_day};
use crate::store::StoreError;
use crate::token_keys::shared::EpochTable;

impl EpochTable for PostgresReportStore {
    fn token_epochs(&self, oldest: DayNumber) -> Result<Vec<(DayNumber, Vec<u8>)>, StoreError> {
        let oldest = sql_day(oldest.0);
        self.db.run(async |c| {
            let rows = c
                .query(
                    "SELECT epoch, sealed FROM token_keys WHERE epoch >= $1 ORDER BY epoch",
                    &[&oldest],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| (DayNumber(day_of(row.get(0))), row.get(1)))
                .collect())
        })
    }

    fn keep_token_epoch(&self, epoch: DayNumber, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let epoch = sql_day(epoch.0);
        self.db.run(async |c| {
            // Committed on its own before the read: a node that lost the race reads the
            // winner's row, which is durable once its INSERT returned.
            c.execute(
                "INSERT INTO token_keys VALUES ($1, $2) ON CONFLICT (epoch) DO NOTHING",
                &[&epoch, &sealed],
            )
            .await?;
            let row = c
                .query_one("SELECT sealed FROM token_keys WHERE epoch = $1", &[&epoch])
                .await?;
            Ok(row.get(0))
        })
    }

    fn forget_token_epochs(&self, oldest: DayNumber) -> Result<u64, StoreError> {
        let oldest = sql_day(oldest.0);
        self.db.run(async |c| {
            Ok(
                c.execute("DELETE FROM token_keys WHERE epoch < $1", &[&oldest])
                    .await?,
            )
        })
    }
}
